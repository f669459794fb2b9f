// Prints the environment that deploy/k8s gives one container of its
// Deployment, one NAME=VALUE per line, as the kubelet would build it: the
// envFrom ConfigMaps and Secrets first, then env (which wins), values from
// secretKeyRef and configMapKeyRef resolved against the rendered objects.
// With --mounts, prints the container's volume mount paths instead.
//   NODE_PATH=deploy/k8s/validate/node_modules node k8s_env.js RENDERED.yaml CONTAINER [--mounts]
"use strict";

const fs = require("fs");
const YAML = require("yaml");

const [file, name, mode] = process.argv.slice(2);
const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter((d) => d);
const find = (kind, n) => docs.find((d) => d.kind === kind && d.metadata.name === n);
const die = (msg) => { console.error(`k8s_env: ${msg}`); process.exit(1); };
const pod = docs.find((d) => d.kind === "Deployment").spec.template.spec;
const c = [...(pod.initContainers || []), ...pod.containers].find((x) => x.name === name);
if (!c) die(`no container ${name}`);
if (mode === "--mounts") {
  for (const m of c.volumeMounts || []) console.log(m.mountPath);
  process.exit(0);
}
function values(kind, n) {
  const o = find(kind, n) || die(`no ${kind} ${n}`);
  const out = { ...(o.data || {}) };
  if (kind === "Secret") {
    for (const k of Object.keys(out)) out[k] = Buffer.from(out[k], "base64").toString();
    Object.assign(out, o.stringData || {});
  }
  return out;
}
const env = new Map();
for (const src of c.envFrom || []) {
  const [kind, ref] = src.configMapRef ? ["ConfigMap", src.configMapRef] : ["Secret", src.secretRef];
  for (const [k, v] of Object.entries(values(kind, ref.name))) env.set((src.prefix || "") + k, v);
}
for (const e of c.env || []) {
  if (e.value !== undefined) env.set(e.name, e.value);
  else if (e.valueFrom && e.valueFrom.secretKeyRef) env.set(e.name, values("Secret", e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key]);
  else if (e.valueFrom && e.valueFrom.configMapKeyRef) env.set(e.name, values("ConfigMap", e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key]);
  else die(`${name}: env ${e.name} has a source this test does not resolve`);
}
for (const [k, v] of env) {
  if (v === undefined || /\n/.test(v)) die(`${name}: env ${k} is unset or holds a newline`);
  console.log(`${k}=${v}`);
}
