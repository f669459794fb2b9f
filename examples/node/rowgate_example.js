#!/usr/bin/env node
// A Node.js client for rowgate that calls every RPC and checks the answers.
//
//   npm ci --no-audit --no-fund && node rowgate_example.js HOST:PORT
//
// The .proto is loaded at run time with @grpc/proto-loader; no generated code.
// It expects the demo data of deploy/sample_data.sql (users 1..10, grouptypes
// 11 and 12, groups 13..16, users_groups 17..24) and leaves it as it found it:
// every write goes to rows it inserts itself (surname MARKER, e-mail under
// @node.example), and rows left behind by an interrupted run are deleted at
// the start. It exits 0 when every check passed, 1 with a FAIL line otherwise.
'use strict';

const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.ROWGATE_PROTO_DIR ||
    path.resolve(__dirname, '..', '..', 'proto');
const MARKER = 'node-example';       // surname of every row this example writes
const DOMAIN = '@node.example';      // e-mail domain of every row this example writes
const MISSING_ID = '999999999999';   // far beyond what all_id_seq hands out
const TIMEOUT_MS = 10000;            // for every call

const SAMPLE_EMAILS = {
  1: 'leslie.cannon@university.world',
  2: 'cathy.hickman@university.world',
  3: 'rene.fowler@university.world',
  4: 'nora.briggs@university.world',
  5: 'oscar.lamb@university.world',
};

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// Deep equality through JSON with sorted object keys (enough for plain data).
function canonical(x) {
  if (Array.isArray(x)) return x.map(canonical);
  if (x && typeof x === 'object') {
    const out = {};
    for (const k of Object.keys(x).sort()) out[k] = canonical(x[k]);
    return out;
  }
  return x;
}
function expectEqual(got, want, what) {
  const g = JSON.stringify(canonical(got));
  const w = JSON.stringify(canonical(want));
  check(g === w, `${what}: got ${g}, want ${w}`);
}

function ok(message) {
  console.log(`ok   ${message}`);
}

// ------------------------------------------------------------------ values

const int = (n) => ({int64_value: String(n)});
const str = (s) => ({string_value: s});

// A Value as a plain JS value: int64 as a string (exact), timestamps as a
// BigInt of nanoseconds, null for NULL or unset.
function plain(value) {
  if (!value || !value.kind || value.kind === 'null_value') return null;
  if (value.kind === 'timestamp_value') {
    const t = value.timestamp_value;
    return BigInt(t.seconds) * 1000000000n + BigInt(t.nanos);
  }
  return value[value.kind];
}

function plainRow(row) {
  const out = {};
  for (const [name, value] of Object.entries(row.fields)) {
    const p = plain(value);
    out[name] = typeof p === 'bigint' ? `ts:${p}` : p;
  }
  return out;
}

// ------------------------------------------------------------------ client

function loadApi() {
  const definition = protoLoader.loadSync('rowgate/v1/rowgate.proto', {
    longs: String,
    keepCase: true,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_DIR, '/usr/include'],
  });
  return grpc.loadPackageDefinition(definition).rowgate.v1;
}

const deadline = () => ({deadline: Date.now() + TIMEOUT_MS});

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, deadline(), (err, response) =>
      err ? reject(err) : resolve(response));
  });
}

async function expectError(code, promise, what, ...messageParts) {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    check(err.code === code,
        `${what}: status ${grpc.status[err.code]} (${err.details}), want ${grpc.status[code]}`);
    for (const part of messageParts) {
      check((err.details || '').includes(part),
          `${what}: message ${JSON.stringify(err.details)} does not mention ${JSON.stringify(part)}`);
    }
    return err;
  }
  throw new CheckFailed(`${what}: succeeded, want ${grpc.status[code]}`);
}

class Example {
  constructor(api, target) {
    this.data = new api.DataService(target, grpc.credentials.createInsecure());
    this.admin = new api.AdminService(target, grpc.credentials.createInsecure());
    this.runId = crypto.randomBytes(6).toString('hex');
  }

  close() {
    this.data.close();
    this.admin.close();
  }

  waitForReady(seconds) {
    return new Promise((resolve, reject) => {
      this.data.waitForReady(Date.now() + seconds * 1000, (err) =>
        err ? reject(new CheckFailed(`no rowgate reachable within ${seconds} s: ${err.message}`))
            : resolve());
    });
  }

  call(method, request) {
    return unary(this.data, method, request);
  }

  batchGet(entity, keys, columns = [], keyColumn = '') {
    return this.call('BatchGet',
        {entity, keys: keys.map(int), columns, key_column: keyColumn});
  }

  // The row with primary key `key` as a plain object, or null.
  async getOne(entity, key, columns = []) {
    const result = (await this.batchGet(entity, [key], columns)).results[0];
    if (!result.found) return null;
    expectEqual(result.rows.length, 1, `rows for ${entity} ${key}`);
    return plainRow(result.rows[0]);
  }

  // ---------------------------------------------------------------- steps

  async cleanupLeftovers() {
    const page = await this.call('Page', {
      entity: 'users', page_size: 1000, columns: ['id'],
      filters: [{column: 'surname', op: 'EQUAL', value: str(MARKER)}],
    });
    const keys = page.rows.map((r) => r.fields.id);
    if (keys.length) {
      await this.call('Delete', {entity: 'users', keys});
      console.log(`note deleted ${keys.length} row(s) left by an earlier run`);
    }
  }

  async listEntities() {
    const response = await this.call('ListEntities', {});
    const byName = Object.fromEntries(response.entities.map((e) => [e.name, e]));
    for (const name of ['users', 'groups', 'grouptypes', 'users_groups']) {
      check(name in byName, `ListEntities: ${name} missing from ${Object.keys(byName)}`);
    }
    for (const name of ['users', 'groups', 'grouptypes']) {
      expectEqual(byName[name].primary_key, 'id', `ListEntities: ${name} primary key`);
    }
    // The notebook's composite key: no one column is the key.
    expectEqual(byName.users_groups.primary_key, '', 'users_groups primary key');
    expectEqual(byName.users_groups.primary_key_columns, ['id', 'user_id', 'group_id'],
        'users_groups primary key columns');
    expectEqual(byName.users.version_column, 'lastchange', 'users version column');
    expectEqual(byName.users_groups.version_column, '', 'users_groups version column');
    const fks = byName.groups.foreign_keys.map(
        (f) => `${f.column}->${f.references_entity}.${f.references_column}`);
    check(fks.includes('grouptype_id->grouptypes.id'),
        `ListEntities: groups foreign keys ${fks} lack grouptype_id -> grouptypes.id`);
    ok(`ListEntities: ${Object.keys(byName).sort().join(', ')}`);
  }

  async describeEntity() {
    const users = await this.call('DescribeEntity', {entity: 'users'});
    expectEqual([users.name, users.primary_key, users.version_column],
        ['users', 'id', 'lastchange'], 'DescribeEntity name, primary key, version column');
    const want = {  // name: [type, value_kind, nullable, has_default, writable]
      id: ['bigint', 'int64_value', false, true, true],
      name: ['character varying', 'string_value', true, false, true],
      surname: ['character varying', 'string_value', true, false, true],
      email: ['character varying', 'string_value', true, false, true],
      lastchange: ['timestamp without time zone', 'timestamp_value', true, true, true],
      externalId: ['bigint', 'int64_value', true, false, true],
    };
    const got = Object.fromEntries(users.columns.map((c) =>
      [c.name, [c.type, c.value_kind, c.nullable, c.has_default, c.writable]]));
    expectEqual(got, want,
        'DescribeEntity users columns (type, value_kind, nullable, has_default, writable)');
    ok('DescribeEntity users: 6 columns, id bigint/int64_value, lastchange version');
  }

  async batchGetByPrimaryKey() {
    const keys = ['1', '2', '3', '4', '4', MISSING_ID];
    const response = await this.batchGet('users', keys, ['id', 'email']);
    expectEqual(response.results.length, keys.length, 'BatchGet result count');
    response.results.forEach((result, i) => {
      const key = keys[i];
      expectEqual(plain(result.key), key, `BatchGet result ${i} key echo`);
      if (key === MISSING_ID) {
        check(!result.found && result.rows.length === 0,
            `BatchGet result ${i}: missing key ${key} reported found`);
        return;
      }
      check(result.found, `BatchGet result ${i}: key ${key} not found`);
      expectEqual(result.rows.map(plainRow), [{id: key, email: SAMPLE_EMAILS[key]}],
          `BatchGet result ${i} rows (only the asked columns)`);
    });
    ok('BatchGet users [1, 2, 3, 4, 4, missing]: in order, duplicate answered, ' +
       'missing not found');
  }

  async batchGetOneToMany() {
    const keys = ['11', '12', MISSING_ID];
    const response = await this.batchGet('groups', keys, ['id', 'name'], 'grouptype_id');
    expectEqual(response.results.length, 3, 'one-to-many result count');
    const want = [
      {13: 'Faculty of Science', 14: 'Faculty of Arts'},
      {15: 'Department of Physics', 16: 'Department of History'},
      {},
    ];
    response.results.forEach((result, i) => {
      expectEqual(plain(result.key), keys[i], 'one-to-many key echo');
      expectEqual(result.found, Object.keys(want[i]).length > 0,
          `one-to-many grouptype ${keys[i]} found`);
      const got = Object.fromEntries(result.rows.map(
          (r) => [r.fields.id.int64_value, r.fields.name.string_value]));
      expectEqual(result.rows.length, Object.keys(want[i]).length,
          `one-to-many grouptype ${keys[i]} row count`);
      expectEqual(got, want[i], `one-to-many grouptype ${keys[i]} groups`);
    });
    ok('BatchGet groups by grouptype_id: 11 -> {13, 14}, 12 -> {15, 16}, missing -> none');
  }

  async streamBatchGet() {
    const bigTag = '9223372036854775813';  // 2^63 + 5: uint64 beyond int64, echoed exactly
    const req = (entity, keys, columns = [], keyColumn = '') =>
      ({entity, keys: keys.map(int), columns, key_column: keyColumn});
    const requests = {
      1: req('users', [1], ['name']),
      2: req('users', [2], ['name']),
      3: req('users', [3, 4, 4, MISSING_ID], ['email']),
      4: req('groups', [11], ['id'], 'grouptype_id'),
      5: req('users_groups', [1], ['group_id'], 'user_id'),
      6: req('no_such_entity', [1]),
      [bigTag]: req('users', [5], ['name']),
    };
    const rowsOf = (r) => r.results.flatMap((res) => res.rows.map(plainRow));
    const want = {
      1: (r) => expectEqual(rowsOf(r), [{name: 'Leslie'}], 'stream tag 1'),
      2: (r) => expectEqual(rowsOf(r), [{name: 'Cathy'}], 'stream tag 2'),
      3: (r) => {
        expectEqual(r.results.map((res) => [plain(res.key), res.found]),
            [['3', true], ['4', true], ['4', true], [MISSING_ID, false]], 'stream tag 3 keys');
        expectEqual(r.results.map((res) => res.rows.map((row) => row.fields.email.string_value)),
            [[SAMPLE_EMAILS[3]], [SAMPLE_EMAILS[4]], [SAMPLE_EMAILS[4]], []],
            'stream tag 3 rows');
      },
      4: (r) => expectEqual(rowsOf(r).map((x) => x.id).sort(), ['13', '14'],
          'stream tag 4 groups of grouptype 11'),
      5: (r) => expectEqual(rowsOf(r).map((x) => x.group_id).sort(), ['13', '15'],
          'stream tag 5 groups of user 1'),
      [bigTag]: (r) => expectEqual(rowsOf(r), [{name: 'Oscar'}], `stream tag ${bigTag}`),
    };

    const seen = {};
    await new Promise((resolve, reject) => {
      const call = this.data.StreamBatchGet(deadline());
      call.on('data', (answer) => {
        try {
          check(answer.tag in requests, `stream: answer with unknown tag ${answer.tag}`);
          check(!(answer.tag in seen), `stream: tag ${answer.tag} answered twice`);
          seen[answer.tag] = answer;
        } catch (err) {
          call.cancel();
          reject(err);
        }
      });
      call.on('error', reject);
      call.on('end', resolve);
      // Every request is written before any answer is read: all are in flight
      // on the one stream together.
      for (const [tag, request] of Object.entries(requests)) call.write({tag, request});
      call.end();
    });
    expectEqual(Object.keys(seen).sort(), Object.keys(requests).sort(), 'stream: tags answered');
    for (const [tag, answer] of Object.entries(seen)) {
      if (tag === '6') {
        expectEqual(answer.outcome, 'error', 'stream tag 6 (unknown entity) outcome');
        expectEqual(answer.error.code, grpc.status.INVALID_ARGUMENT, 'stream tag 6 error code');
        check(answer.error.message.includes('no_such_entity'),
            `stream tag 6: message ${JSON.stringify(answer.error.message)} does not name the entity`);
      } else {
        expectEqual(answer.outcome, 'response', `stream tag ${tag} outcome`);
        want[tag](answer.response);
      }
    }
    ok(`StreamBatchGet: ${Object.keys(requests).length} tags in flight on one stream, each ` +
       'answered once; the unknown entity\'s error did not end the stream');
  }

  async insert() {
    this.emailA = `ada.${this.runId}${DOMAIN}`;
    this.emailB = `alan.${this.runId}${DOMAIN}`;
    const big = '9007199254740993';  // 2^53 + 1: not exact as a JS number, exact here
    const response = await this.call('Insert', {entity: 'users', rows: [
      {fields: {name: str('Ada'), surname: str(MARKER), email: str(this.emailA),
        externalId: int(big)}},
      {fields: {name: str('Alan'), surname: str(MARKER), email: str(this.emailB)}},
    ]});
    expectEqual(response.rows.length, 2, 'Insert row count');
    const [a, b] = response.rows.map(plainRow);
    for (const [row, name, email] of [[a, 'Ada', this.emailA], [b, 'Alan', this.emailB]]) {
      check(/^[1-9][0-9]*$/.test(row.id || ''), `Insert: no id from the sequence in ${JSON.stringify(row)}`);
      check(row.lastchange, `Insert: no lastchange default in ${JSON.stringify(row)}`);
      expectEqual([row.name, row.surname, row.email], [name, MARKER, email], 'Insert: stored row');
      check('externalId' in row, `Insert: the stored row lacks externalId: ${JSON.stringify(row)}`);
    }
    expectEqual(a.externalId, big, 'Insert: externalId 2^53+1 exact');
    expectEqual(b.externalId, null, 'Insert: externalId left out is NULL');
    check(a.id !== b.id, 'Insert: both rows got the same id');
    this.idA = a.id;
    this.idB = b.id;
    expectEqual(await this.getOne('users', this.idA), a, 'BatchGet of the inserted row');
    ok(`Insert: users ${this.idA} and ${this.idB} (ids from the sequence, lastchange set, ` +
       '2^53+1 exact, omitted column NULL)');

    // A foreign-key violation is FAILED_PRECONDITION, and nothing is inserted.
    await expectError(grpc.status.FAILED_PRECONDITION, this.call('Insert', {
      entity: 'users_groups', rows: [
        {fields: {user_id: int(this.idA), group_id: int(13)}},
        {fields: {user_id: int(MISSING_ID), group_id: int(13)}},
      ]}), 'Insert users_groups with a missing user');
    const linked = (await this.batchGet('users_groups', [this.idA], [], 'user_id')).results[0];
    check(!linked.found, 'Insert: a failed multi-row insert left a row behind');
    ok('Insert with a foreign-key violation: FAILED_PRECONDITION, all or nothing');
  }

  async update() {
    const read = (await this.batchGet('users', [this.idA], ['lastchange'])).results[0];
    check(read.found, `Update: user ${this.idA} not found`);
    const version = read.rows[0].fields.lastchange;
    check(version.kind === 'timestamp_value',
        `Update: lastchange is ${JSON.stringify(version)}, want a timestamp_value`);
    const before = await this.getOne('users', this.idA);

    const response = await this.call('Update', {entity: 'users', row: {fields: {
      id: int(this.idA), lastchange: version, name: str('Augusta')}}});
    const after = plainRow(response.row);
    expectEqual(after.name, 'Augusta', 'Update: new name');
    for (const column of ['id', 'surname', 'email', 'externalId']) {
      expectEqual(after[column], before[column], `Update: unchanged ${column}`);
    }
    check(plain(response.row.fields.lastchange) > plain(version),
        `Update: lastchange ${after.lastchange} not after ${before.lastchange}`);
    expectEqual(await this.getOne('users', this.idA), after, 'BatchGet after Update');
    ok(`Update user ${this.idA} with the lastchange read: name changed, version bumped, ` +
       'other columns kept');

    // The same version again is stale now.
    await expectError(grpc.status.ABORTED, this.call('Update', {entity: 'users', row: {fields: {
      id: int(this.idA), lastchange: version, name: str('Stale')}}}),
    'stale Update', 'lastchange');
    expectEqual(await this.getOne('users', this.idA), after, 'row after the stale Update');
    ok('Update with the old lastchange: ABORTED, row unchanged');

    await expectError(grpc.status.NOT_FOUND, this.call('Update', {entity: 'users', row: {fields: {
      id: int(MISSING_ID), lastchange: version, name: str('Nobody')}}}),
    'Update of a missing row');
    ok('Update of a missing row: NOT_FOUND');
    this.versionA = response.row.fields.lastchange;
    this.staleVersionA = version;
  }

  async page() {
    // All users, 3 at a time, following next_page_token to the end.
    let token = '';
    let pages = 0;
    const ids = [];
    for (;;) {
      const response = await this.call('Page',
          {entity: 'users', page_size: 3, page_token: token, columns: ['id', 'email']});
      pages++;
      check(pages < 100000, 'Page: more pages than users can fill');
      check(response.rows.length <= 3, `Page ${pages}: ${response.rows.length} rows > page_size 3`);
      for (const row of response.rows) {
        expectEqual(Object.keys(row.fields).sort(), ['email', 'id'], `Page ${pages} columns`);
        ids.push(BigInt(row.fields.id.int64_value));
      }
      if (!response.next_page_token) break;
      check(response.rows.length === 3,
          `Page ${pages}: ${response.rows.length} rows but a next_page_token`);
      token = response.next_page_token;
    }
    for (let i = 1; i < ids.length; i++) {
      check(ids[i - 1] < ids[i], `Page: id ${ids[i]} after ${ids[i - 1]}: not in primary-key ` +
            'order, or repeated');
    }
    const have = new Set(ids.map(String));
    const missing = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', this.idA, this.idB]
        .filter((id) => !have.has(id));
    check(missing.length === 0, `Page: users ${missing} never came`);
    ok(`Page users, page_size 3: ${ids.length} rows in ${pages} pages, in id order, no repeats, ` +
       'no gaps');

    // Filters and ordering: this run's rows, by name descending.
    const filtered = await this.call('Page', {
      entity: 'users', columns: ['name'],
      filters: [
        {column: 'surname', op: 'EQUAL', value: str(MARKER)},
        {column: 'email', op: 'IN', values: [str(this.emailA), str(this.emailB)]},
      ],
      order_by: [{column: 'name', descending: true}],
    });
    expectEqual(filtered.rows.map((r) => r.fields.name.string_value), ['Augusta', 'Alan'],
        'Page filtered by surname and email IN, name desc');
    expectEqual(filtered.next_page_token, '', 'Page filtered: next_page_token at the end');
    ok('Page with EQUAL and IN filters, ordered by name descending');
  }

  async delete() {
    // With expected_version, a stale version is refused.
    await expectError(grpc.status.ABORTED, this.call('Delete', {
      entity: 'users', keys: [int(this.idA)], expected_version: this.staleVersionA}),
    'Delete with a stale expected_version');
    check(await this.getOne('users', this.idA) !== null,
        'Delete with a stale expected_version deleted the row');
    let response = await this.call('Delete', {
      entity: 'users', keys: [int(this.idA)], expected_version: this.versionA});
    expectEqual(response.deleted_keys.map(plain), [this.idA],
        'Delete with the current expected_version');
    ok(`Delete user ${this.idA} with expected_version: stale ABORTED, current deleted`);

    const keys = [this.idB, MISSING_ID, this.idA];
    response = await this.call('Delete', {entity: 'users', keys: keys.map(int)});
    expectEqual(response.deleted_keys.map(plain), [this.idB], `Delete [${keys}]: deleted_keys`);
    const results = (await this.batchGet('users', [this.idA, this.idB])).results;
    check(!results.some((r) => r.found), 'Delete: a deleted user is still found');
    ok(`Delete users [${this.idB}, missing, already deleted]: only ${this.idB} reported`);
  }

  async errors() {
    const code = grpc.status.INVALID_ARGUMENT;
    await expectError(code, this.batchGet('no_such_entity', [1]),
        'BatchGet of an unknown entity', 'no_such_entity');
    await expectError(code, this.call('DescribeEntity', {entity: 'no_such_entity'}),
        'DescribeEntity of an unknown entity', 'no_such_entity');
    await expectError(code, this.call('BatchGet', {entity: 'users', keys: [str('1')]}),
        'BatchGet with a string key for a bigint', 'int64_value', 'string_value');
    await expectError(code, this.batchGet('users', [1], ['no_such_column']),
        'BatchGet of an unknown column', 'no_such_column');
    ok('errors: unknown entity (BatchGet, DescribeEntity), wrong key type, unknown column ' +
       '-> INVALID_ARGUMENT naming them');
  }

  async loaderStats(before) {
    const after = await unary(this.admin, 'GetLoaderStats', {});
    const n = (x) => BigInt(x);
    const grew = n(after.requests) - n(before.requests);
    // This run made at least this many lookups itself (other clients may add more).
    check(grew >= 10n, `GetLoaderStats: requests grew by ${grew}, want at least this run's 10`);
    check(n(after.keys) - n(before.keys) >= grew, 'GetLoaderStats: fewer keys than requests');
    check(n(after.queries) > n(before.queries), 'GetLoaderStats: queries did not grow');
    check(n(after.keys_queried) <= n(after.keys),
        `GetLoaderStats: keys_queried ${after.keys_queried} > keys ${after.keys}`);
    check(n(after.dispatch_wait_micros_max) <= n(after.dispatch_wait_micros_total),
        'GetLoaderStats: dispatch wait max above total');
    check(after.keys_per_query_buckets.some((b) => n(b) > 0n), 'GetLoaderStats: empty histogram');
    ok(`GetLoaderStats: requests ${after.requests}, keys ${after.keys}, ` +
       `queries ${after.queries}, keys_queried ${after.keys_queried}`);
  }

  async run() {
    await this.waitForReady(15);
    const statsBefore = await unary(this.admin, 'GetLoaderStats', {});
    await this.cleanupLeftovers();
    await this.listEntities();
    await this.describeEntity();
    await this.batchGetByPrimaryKey();
    await this.batchGetOneToMany();
    await this.streamBatchGet();
    await this.insert();
    await this.update();
    await this.page();
    await this.delete();
    await this.errors();
    await this.loaderStats(statsBefore);
  }
}

async function main() {
  if (process.argv.length !== 3) {
    console.error(`usage: node ${path.basename(process.argv[1])} HOST:PORT`);
    return 2;
  }
  const example = new Example(loadApi(), process.argv[2]);
  try {
    await example.run();
  } catch (err) {
    if (err instanceof CheckFailed) {
      console.error(`FAIL node: ${err.message}`);
    } else if (err && err.code !== undefined && err.details !== undefined) {
      console.error(`FAIL node: unexpected ${grpc.status[err.code]}: ${err.details}`);
      console.error(err.stack);
    } else {
      console.error(`FAIL node: ${err && err.stack ? err.stack : err}`);
    }
    return 1;
  } finally {
    example.close();
  }
  console.log('PASS node: every check passed');
  return 0;
}

main().then((code) => { process.exitCode = code; });
