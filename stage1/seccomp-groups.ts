// The seccomp wildcard groups tspod understands, as data: appc's `@appc.io/all` and
// `@appc.io/empty`, and the default whitelist and blacklist rkt took from Docker
// (`@rkt/default-whitelist` = `@docker/default-whitelist`, `@rkt/default-blacklist` =
// `@docker/default-blacklist`; rkt stage1/init/common/seccomp.go). The lists are written for
// x86_64 from what each call can do, following Docker's reasoning: the whitelist holds the calls
// ordinary programs need and that the kernel already guards with namespaces or with a capability
// outside appc's default set; the blacklist holds calls that reach global kernel state (modules,
// clocks, swap, keyrings, mounts, namespaces, tracing). 32-bit-only spellings (`stat64`,
// `socketcall`, `*_time64`) are left out: tspod filters only AUDIT_ARCH_X86_64 and kills other
// arches. A few blacklist names do not exist on x86_64 (`stime`); they are listed in
// `NOT_ON_X86_64` and skipped when a filter is built.

/** Blacklist names that are system calls on other architectures only. */
export const NOT_ON_X86_64: readonly string[] = ['stime', 'umount', 'bdflush', 'sys_debug_setcontext', 'vm86', 'vm86old'];

/**
 * `@rkt/default-whitelist`: allowed in retain mode when an app sets no seccomp isolator.
 * Deliberately absent (blacklist or capability-gated in Docker's profile): mount/umount2,
 * pivot_root, chroot-free namespace calls (unshare, setns), ptrace and process_vm_*, kcmp,
 * pidfd_getfd, kexec_*, *_module, bpf, perf_event_open, keyctl/add_key/request_key, reboot,
 * swapon/swapoff, acct, settimeofday/clock_settime/adjtimex-with-effects (adjtimex is read-only
 * without CAP_SYS_TIME and stays), iopl/ioperm, lookup_dcookie, quotactl, personality, uselib,
 * userfaultfd, vhangup, syslog, mbind/set_mempolicy/move_pages/migrate_pages/get_mempolicy,
 * name_to_handle_at/open_by_handle_at, fanotify_init, modify_ldt, sysfs, _sysctl, fsopen & co
 * (the new mount API), move_mount, open_tree.
 * Kept although they can create namespaces: clone and clone3 (arguments are not inspected; rkt's
 * whitelist allowed clone too; glibc >= 2.34 creates threads with clone3 and falls back to clone
 * only on ENOSYS, so denying clone3 with EPERM would break pthread_create).
 */
export const DEFAULT_WHITELIST: readonly string[] = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'arch_prctl', 'bind', 'brk',
  'capget', 'capset', 'chdir', 'chmod', 'chown', 'chroot',
  'clock_adjtime', 'clock_getres', 'clock_gettime', 'clock_nanosleep', 'clone', 'clone3',
  'close', 'close_range', 'connect', 'copy_file_range', 'creat',
  'dup', 'dup2', 'dup3',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old',
  'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group',
  'faccessat', 'faccessat2', 'fadvise64', 'fallocate', 'fanotify_mark',
  'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fchownat', 'fcntl', 'fdatasync',
  'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr',
  'fstat', 'fstatfs', 'fsync', 'ftruncate', 'futex', 'futex_waitv', 'futimesat',
  'get_robust_list', 'get_thread_area', 'getcpu', 'getcwd', 'getdents', 'getdents64',
  'getegid', 'geteuid', 'getgid', 'getgroups', 'getitimer', 'getpeername', 'getpgid', 'getpgrp',
  'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresuid', 'getrlimit', 'getrusage',
  'getsid', 'getsockname', 'getsockopt', 'gettid', 'gettimeofday', 'getuid', 'getxattr',
  'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch',
  'io_cancel', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_setup', 'io_submit',
  'io_uring_enter', 'io_uring_register', 'io_uring_setup',
  'ioctl', 'ioprio_get', 'ioprio_set', 'kill',
  'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self',
  'lchown', 'lgetxattr', 'link', 'linkat', 'listen', 'listxattr', 'llistxattr', 'lremovexattr',
  'lseek', 'lsetxattr', 'lstat',
  'madvise', 'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat',
  'mlock', 'mlock2', 'mlockall', 'mmap', 'mprotect',
  'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedsend', 'mq_unlink',
  'mremap', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap',
  'nanosleep', 'newfstatat', 'open', 'openat', 'openat2', 'pause',
  'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  'poll', 'ppoll', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease',
  'pselect6', 'pwrite64', 'pwritev', 'pwritev2',
  'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recvfrom', 'recvmmsg', 'recvmsg',
  'remap_file_pages', 'removexattr', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'rmdir', 'rseq',
  'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_tgsigqueueinfo',
  'sched_get_priority_max', 'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr', 'sched_getparam',
  'sched_getscheduler', 'sched_rr_get_interval', 'sched_setaffinity', 'sched_setattr', 'sched_setparam',
  'sched_setscheduler', 'sched_yield', 'seccomp', 'select',
  'semctl', 'semget', 'semop', 'semtimedop', 'sendfile', 'sendmmsg', 'sendmsg', 'sendto',
  'set_robust_list', 'set_thread_area', 'set_tid_address',
  'setfsgid', 'setfsuid', 'setgid', 'setgroups', 'setitimer', 'setpgid', 'setpriority',
  'setregid', 'setresgid', 'setresuid', 'setreuid', 'setrlimit', 'setsid', 'setsockopt', 'setuid', 'setxattr',
  'shmat', 'shmctl', 'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4',
  'socket', 'socketpair', 'splice', 'stat', 'statfs', 'statx', 'symlink', 'symlinkat',
  'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time',
  'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_settime',
  'timerfd_create', 'timerfd_gettime', 'timerfd_settime', 'times', 'tkill', 'truncate',
  'umask', 'uname', 'unlink', 'unlinkat', 'utime', 'utimensat', 'utimes',
  'vfork', 'vmsplice', 'wait4', 'waitid', 'write', 'writev',
];

/** `@rkt/default-blacklist`: blocked in remove mode by the wildcard. */
export const DEFAULT_BLACKLIST: readonly string[] = [
  '_sysctl', 'acct', 'add_key', 'bpf', 'clock_settime', 'create_module', 'delete_module',
  'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'get_mempolicy', 'init_module',
  'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mbind',
  'migrate_pages', 'modify_ldt', 'mount', 'mount_setattr', 'move_mount', 'move_pages', 'name_to_handle_at',
  'nfsservctl', 'open_by_handle_at', 'open_tree', 'perf_event_open', 'personality', 'pidfd_getfd',
  'pivot_root', 'process_vm_readv', 'process_vm_writev', 'ptrace', 'query_module', 'quotactl',
  'reboot', 'request_key', 'set_mempolicy', 'setdomainname', 'sethostname', 'setns',
  'settimeofday', 'stime', 'swapoff', 'swapon', 'sysfs', 'syslog', 'umount', 'umount2', 'unshare',
  'uselib', 'userfaultfd', 'ustat', 'vhangup', 'vm86', 'vm86old',
];

/**
 * Allowed in every retain-mode filter on top of the listed calls: spec/ace.md lets the ACE add "a
 * minimal implementation set", and rkt's filters went through systemd's SystemCallFilter=, which
 * always adds its `@default` group. execve must be allowed: the filter is installed before it.
 */
export const RETAIN_IMPLICIT: readonly string[] = [
  'clock_getres', 'clock_gettime', 'clock_nanosleep', 'execve', 'exit', 'exit_group', 'futex',
  'get_robust_list', 'get_thread_area', 'getegid', 'geteuid', 'getgid', 'getpgid', 'getpgrp', 'getpid',
  'getppid', 'getrandom', 'getresgid', 'getresuid', 'getrlimit', 'getsid', 'gettid', 'gettimeofday',
  'getuid', 'membarrier', 'mmap', 'mprotect', 'munmap', 'nanosleep', 'pause', 'prlimit64',
  'restart_syscall', 'rseq', 'rt_sigreturn', 'sched_getaffinity', 'sched_yield', 'set_robust_list',
  'set_thread_area', 'set_tid_address', 'time',
];

export const SECCOMP_GROUPS = {
  '@rkt/default-whitelist': DEFAULT_WHITELIST,
  '@docker/default-whitelist': DEFAULT_WHITELIST,
  '@rkt/default-blacklist': DEFAULT_BLACKLIST,
  '@docker/default-blacklist': DEFAULT_BLACKLIST,
} as const satisfies Record<string, readonly string[]>;

/** appc's own wildcards (spec/ace.md): everything, and nothing. */
export const APPC_ALL = '@appc.io/all';
export const APPC_EMPTY = '@appc.io/empty';
