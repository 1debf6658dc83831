import { it } from "vitest"; 
import { validateImageManifest, validatePodManifest, schemaCompileCount } from "../../src/appc/index.js";
it("scratch", () => {
const t = (f: () => unknown) => { try { console.log(JSON.stringify(f())); } catch (e) { console.log(String((e as Error).message)); } };
t(() => validateImageManifest({acKind:'ImageManifest', acVersion:'0.8.11', name:'example.com/app'}));
t(() => validateImageManifest({ACKIND:'ImageManifest', acVersion:'0.0.0', name:'example.com/app', labels:[{name:'os',value:'linux'},{name:'arch',value:'arm'}], app:{user:'0',group:'0',exec:['bin/x'], supplementaryGids:[1], isolators:[{name:'resource/cpu',value:{limit:'1K'}}]}}));
t(() => validateImageManifest({acVersion:'0.8.11', name:'Example', annotations:[{name:'created',value:'yesterday'}]}));
t(() => validatePodManifest({acKind:'PodManifest', acVersion:'0.8.11', apps:[{name:'a',image:{id:'sha512-abc'}}], volumes:[{name:'v',kind:'host',source:'/x',mode:'0755'}]}));
console.log(schemaCompileCount());
});
