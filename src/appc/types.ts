// appc vocabulary as TypeScript types: the image manifest, the pod manifest and their parts,
// as spec/aci.md, spec/pods.md and spec/types.md define them (appc 0.8.11). Types only.

export const APPC_VERSION = '0.8.11';

export interface Label {
  name: string;
  value: string;
}

export interface Annotation {
  name: string;
  value: string;
}

export interface Isolator {
  name: string;
  value: unknown;
}

export interface EnvironmentVariable {
  name: string;
  value: string;
}

export interface EventHandler {
  name: 'pre-start' | 'post-stop';
  exec: string[];
}

export interface MountPoint {
  name: string;
  path: string;
  readOnly?: boolean;
}

export interface Port {
  name: string;
  protocol: string;
  port: number;
  count?: number;
  socketActivated?: boolean;
}

export interface App {
  exec?: string[];
  user: string;
  group: string;
  supplementaryGIDs?: number[];
  eventHandlers?: EventHandler[];
  workingDirectory?: string;
  environment?: EnvironmentVariable[];
  isolators?: Isolator[];
  mountPoints?: MountPoint[];
  ports?: Port[];
  userAnnotations?: Record<string, string>;
  userLabels?: Record<string, string>;
}

export interface Dependency {
  imageName: string;
  imageID?: string;
  labels?: Label[];
  size?: number;
}

export interface ImageManifest {
  acKind: 'ImageManifest';
  acVersion: string;
  name: string;
  labels?: Label[];
  app?: App;
  annotations?: Annotation[];
  dependencies?: Dependency[];
  pathWhitelist?: string[];
}

export interface Volume {
  name: string;
  kind: 'host' | 'empty';
  source?: string;
  readOnly?: boolean;
  recursive?: boolean;
  mode?: string;
  uid?: number;
  gid?: number;
}

export interface Mount {
  volume: string;
  path: string;
  appVolume?: Volume;
}

export interface RuntimeImage {
  id: string;
  name?: string;
  labels?: Label[];
}

export interface RuntimeApp {
  name: string;
  image: RuntimeImage;
  app?: App;
  readOnlyRootFS?: boolean;
  mounts?: Mount[];
  annotations?: Annotation[];
}

export interface ExposedPort {
  name: string;
  hostPort: number;
  hostIP?: string;
  podPort?: Port;
}

export interface PodManifest {
  acKind: 'PodManifest';
  acVersion: string;
  apps: RuntimeApp[];
  volumes?: Volume[];
  isolators?: Isolator[];
  annotations?: Annotation[];
  ports?: ExposedPort[];
  userAnnotations?: Record<string, string>;
  userLabels?: Record<string, string>;
}
