#!/usr/bin/env node
// Checks Kubernetes objects offline against the Kubernetes OpenAPI schemas
// that the pinned `kubernetes-models` package ships (generated from
// Kubernetes' own OpenAPI spec, compiled with ajv), strictly: a field the
// schema does not know is an error, as with `kubeconform -strict` or the API
// server's `fieldValidation=Strict`. Without that, a misspelt
// `readinesProbe` would pass, since the schemas allow unknown properties.
//
//   kubectl kustomize deploy/k8s | node validate.js      (or FILE...)
//
// Prints one line per object; exits 1 if any object has an error, an
// unknown apiVersion/kind (no schema: nothing unchecked passes) or the input
// holds no object at all.
"use strict";

const fs = require("fs");
const YAML = require("yaml");

// apiVersion "v1" is the core group (kubernetes-models/v1), "apps/v1" is
// kubernetes-models/apps/v1, "networking.k8s.io/v1" likewise.
function modelFor(apiVersion, kind) {
  let mod;
  try {
    mod = require(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    return null;
  }
  return typeof mod[kind] === "function" ? mod[kind] : null;
}

// The schema's errors for `data` (an empty list when it is valid).
function errorsOf(Model, data) {
  try {
    new Model(data).validate();
    return [];
  } catch (e) {
    if (Array.isArray(e.errors)) return e.errors;
    return [{ instancePath: "", message: String(e.message || e) }];
  }
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// JSON-pointer path segment, as ajv writes it in instancePath.
function seg(key) {
  return "/" + String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

// Fields the schema does not know. The compiled schemas cannot be asked
// directly, so each field is probed: its value is replaced by a Symbol, which
// no JSON type matches. A field the schema describes (including map entries
// such as labels, whose values must be strings) then fails at exactly that
// path; a field the schema does not know passes unnoticed, so it is unknown.
function unknownFields(Model, doc) {
  const unknown = [];
  const root = structuredClone(doc);
  function walk(node, path) {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, path + seg(i)));
      return;
    }
    if (!isObject(node)) return;
    for (const key of Object.keys(node)) {
      const saved = node[key];
      node[key] = Symbol("probe");
      const here = path + seg(key);
      const known = errorsOf(Model, root).some(
        (e) => e.instancePath === here || e.instancePath.startsWith(here + "/"));
      node[key] = saved;
      if (known) {
        walk(saved, here);
      } else {
        unknown.push(here);
      }
    }
  }
  walk(root, "");
  return unknown;
}

function check(doc) {
  const name = `${doc.kind || "?"}/${(doc.metadata && doc.metadata.name) || "?"}`;
  const problems = [];
  const Model = doc.apiVersion && doc.kind ? modelFor(doc.apiVersion, doc.kind) : null;
  if (!Model) {
    problems.push(`no schema for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
  } else {
    for (const e of errorsOf(Model, doc)) {
      problems.push(`${e.instancePath || "/"} ${e.message}` +
        (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ""));
    }
    if (problems.length === 0) {
      for (const path of unknownFields(Model, doc)) {
        problems.push(`${path}: unknown field`);
      }
    }
  }
  return { name, problems };
}

function main() {
  const files = process.argv.slice(2);
  const inputs = files.length
    ? files.map((f) => fs.readFileSync(f, "utf8"))
    : [fs.readFileSync(0, "utf8")];
  let objects = 0;
  let failed = 0;
  for (const text of inputs) {
    for (const d of YAML.parseAllDocuments(text)) {
      if (d.errors.length) {
        console.log(`FAILED: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
        failed++;
        continue;
      }
      const doc = d.toJS();
      if (doc === null || doc === undefined) continue;
      objects++;
      const { name, problems } = check(doc);
      if (problems.length) {
        failed++;
        console.log(`FAILED: ${name}`);
        for (const p of problems) console.log(`  ${p}`);
      } else {
        console.log(`ok: ${name} (${doc.apiVersion})`);
      }
    }
  }
  if (objects === 0) {
    console.log("FAILED: no Kubernetes object in the input");
    failed++;
  }
  console.log(`${objects} objects, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
