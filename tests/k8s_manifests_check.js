// Checks that deploy/k8s, rendered, is the pod README "Run in Kubernetes"
// describes: rowgate as a native sidecar beside the app, sharing a unix
// socket, probed over gRPC, configured from a ConfigMap and a Secret, bounded
// and locked down. The schema check is deploy/k8s/validate/validate.js; this
// checks how the objects fit together.
//   NODE_PATH=deploy/k8s/validate/node_modules node k8s_manifests_check.js RENDERED.yaml
"use strict";

const fs = require("fs");
const YAML = require("yaml");

const docs = YAML.parseAllDocuments(fs.readFileSync(process.argv[2], "utf8"))
  .map((d) => d.toJS()).filter((d) => d);
let passed = 0;
let failed = 0;
function check(name, ok) {
  if (ok) {
    passed++;
    console.log(`ok: ${name}`);
  } else {
    failed++;
    console.log(`FAILED: ${name}`);
  }
}
const find = (kind, name) =>
  docs.find((d) => d.kind === kind && (!name || d.metadata.name === name));

const deployment = find("Deployment");
check("a Deployment is rendered", deployment);
if (!deployment) process.exit(1);
const pod = deployment.spec.template.spec;
const sidecar = (pod.initContainers || []).find((c) => c.name === "rowgate");
const app = (pod.containers || []).find((c) => c.name === "app");
check("rowgate is an init container", sidecar);
check("the app is a main container", app);
if (!sidecar || !app) process.exit(1);

// Native sidecar (Kubernetes 1.29+).
check("rowgate's restartPolicy is Always (native sidecar)", sidecar.restartPolicy === "Always");

// Configuration: ConfigMap through envFrom, DATABASE_URL from a Secret.
const cmName = ((sidecar.envFrom || []).find((e) => e.configMapRef) || {}).configMapRef?.name;
const cm = find("ConfigMap", cmName);
check(`rowgate's envFrom names a rendered ConfigMap (${cmName})`, cm);
const config = (cm && cm.data) || {};
check("every ConfigMap key is a ROWGATE_* variable",
  Object.keys(config).length > 0 && Object.keys(config).every((k) => /^ROWGATE_[A-Z0-9_]+$/.test(k)));
const dbEnv = (sidecar.env || []).find((e) => e.name === "DATABASE_URL");
const ref = dbEnv && dbEnv.valueFrom && dbEnv.valueFrom.secretKeyRef;
const secret = ref && find("Secret", ref.name);
check("DATABASE_URL comes from a rendered Secret's key",
  secret && ((secret.stringData || {})[ref.key] !== undefined || (secret.data || {})[ref.key] !== undefined));
check("no DATABASE_URL in the ConfigMap", config.DATABASE_URL === undefined && config.ROWGATE_DATABASE_URL === undefined);

// The unix socket lives in a volume both containers mount, and the app dials it.
const listen = (config.ROWGATE_LISTEN || "").split(",");
const sock = (listen.find((a) => a.startsWith("unix:")) || "").slice("unix:".length);
const mountOf = (c, path) => (c.volumeMounts || []).find((m) => path.startsWith(m.mountPath + "/"));
const sideMount = mountOf(sidecar, sock);
const appMount = mountOf(app, sock);
const volume = sideMount && (pod.volumes || []).find((v) => v.name === sideMount.name);
check(`rowgate listens on a unix socket (${sock})`, sock !== "");
check("the socket's directory is an emptyDir mounted in both containers",
  volume && volume.emptyDir && appMount && appMount.name === sideMount.name &&
  appMount.mountPath === sideMount.mountPath);
const appTarget = ((app.env || []).find((e) => e.name === "APP_ROWGATE_TARGET") || {}).value;
check(`the app dials that socket (${appTarget})`, appTarget === `unix://${sock}`);

// gRPC probes on the port rowgate listens on for the kubelet (0.0.0.0).
const tcp = listen.find((a) => a.startsWith("0.0.0.0:"));
const port = tcp ? Number(tcp.split(":")[1]) : NaN;
check(`rowgate also listens on 0.0.0.0 for the probes (${tcp})`, port > 0);
for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
  const p = sidecar[probe];
  check(`rowgate's ${probe} is a native gRPC probe on port ${port}`, p && p.grpc && p.grpc.port === port);
}
check("readiness asks for rowgate.v1.DataService",
  sidecar.readinessProbe && sidecar.readinessProbe.grpc.service === "rowgate.v1.DataService");
const startupBudget = sidecar.startupProbe &&
  sidecar.startupProbe.periodSeconds * sidecar.startupProbe.failureThreshold;
const startupTimeout = Number(config.ROWGATE_STARTUP_TIMEOUT_S || 30);
check(`the startup probe waits longer (${startupBudget} s) than ROWGATE_STARTUP_TIMEOUT_S (${startupTimeout} s)`,
  startupBudget > startupTimeout);

// Shutdown: the pod's grace covers rowgate's own.
const grace = Number(config.ROWGATE_SHUTDOWN_GRACE_S || 10);
check(`terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) > ROWGATE_SHUTDOWN_GRACE_S (${grace})`,
  pod.terminationGracePeriodSeconds > grace);

// Metrics: scraped where rowgate serves them, and admitted by the NetworkPolicy.
const metrics = config.ROWGATE_METRICS_LISTEN || "";
const metricsPort = Number(metrics.split(":")[1]);
const ann = deployment.spec.template.metadata.annotations || {};
check(`Prometheus scrape annotations point at ROWGATE_METRICS_LISTEN (${metrics})`,
  ann["prometheus.io/scrape"] === "true" && Number(ann["prometheus.io/port"]) === metricsPort &&
  ann["prometheus.io/path"] === "/metrics");
const metricsContainerPort = (sidecar.ports || []).find((p) => p.containerPort === metricsPort);
check("the metrics port is a named container port", metricsContainerPort && metricsContainerPort.name);
const policy = find("NetworkPolicy");
const admitted = policy ? policy.spec.ingress.flatMap((r) => (r.ports || []).map((p) => p.port)) : [];
check("the NetworkPolicy selects the pod and admits only the metrics port",
  policy && policy.spec.podSelector.matchLabels &&
  Object.entries(policy.spec.podSelector.matchLabels).every(
    ([k, v]) => deployment.spec.template.metadata.labels[k] === v) &&
  admitted.length === 1 && (admitted[0] === metricsPort || admitted[0] === metricsContainerPort.name));

// Resources and security, for both containers.
const mi = (q) => {
  const m = /^(\d+)(Mi|Gi)$/.exec(String(q));
  return m ? Number(m[1]) * (m[2] === "Gi" ? 1024 : 1) : NaN;
};
for (const c of [sidecar, app]) {
  const r = c.resources || {};
  check(`${c.name}: cpu and memory requests and limits`,
    r.requests && r.limits && r.requests.cpu && r.requests.memory && r.limits.cpu && r.limits.memory &&
    mi(r.limits.memory) >= mi(r.requests.memory));
  const s = c.securityContext || {};
  const ps = pod.securityContext || {};
  check(`${c.name}: runs as non-root`, (s.runAsNonRoot ?? ps.runAsNonRoot) === true &&
    (s.runAsUser ?? ps.runAsUser) > 0);
  check(`${c.name}: read-only root filesystem`, s.readOnlyRootFilesystem === true);
  check(`${c.name}: no privilege escalation`, s.allowPrivilegeEscalation === false && s.privileged !== true);
  check(`${c.name}: all capabilities dropped`, s.capabilities && (s.capabilities.drop || []).includes("ALL") &&
    !(s.capabilities.add || []).length);
}
// README "Benchmarks": 64 MB peak at 512 in flight; "Hostile clients":
// under 150 MB with 100 connections x 100 streams.
check("rowgate's memory request covers the benchmark's 64 MB peak",
  mi(sidecar.resources.requests.memory) >= 64);
check("rowgate's memory limit covers the hostile clients' 150 MB",
  mi(sidecar.resources.limits.memory) >= 150);
check("no service links (they would inject ROWGATE_* variables)", pod.enableServiceLinks === false);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
