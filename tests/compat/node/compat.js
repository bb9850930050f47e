// Shared by the Node compatibility scripts: named flows with a clear failure line, bounded
// waits, and a plain HTTPS call signed with the SDK's own SAS helper (for the REST calls the
// service SDK makes over AMQP or not at all).
'use strict';

const fs = require('fs');
const https = require('https');
const { ConnectionString, SharedAccessSignature } = require('azure-iot-common');

let currentFlow = null;

function step(text) {
  console.log(`[node compat] ${text}`);
}

// Runs `body` as the flow `name`; the first failure names the flow and exits 1.
async function flow(name, body) {
  currentFlow = name;
  console.log(`== flow: ${name}`);
  try {
    await body();
  } catch (err) {
    const http = err && err.response && err.response.statusCode
      ? ` (HTTP ${err.response.statusCode} ${err.response.headers && err.response.headers['iothub-errorcode'] || ''}: ${String(err.responseBody || '').slice(0, 300)})`
      : '';
    console.error(`FAIL [flow ${name}]: ${err && err.stack ? err.stack : err}${http}`);
    console.error(`compat flow FAILED: ${name}`);
    process.exit(1);
  }
  console.log(`== flow passed: ${name}`);
  currentFlow = null;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A FIFO that handlers push into and the flow awaits with a bound.
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  next(what, ms = 20000) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), ms, what);
  }
}

function loadReady(path) {
  const ready = JSON.parse(fs.readFileSync(path, 'utf8'));
  ready.ca = fs.readFileSync(ready.ca_file, 'utf8');
  ready.service = ConnectionString.parse(ready.service_connection_string);
  return ready;
}

function moduleConnectionString(hostName, deviceId, moduleId, key) {
  return `HostName=${hostName};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
}

// One HTTPS request to the hub, authorised with a service SAS made by azure-iot-common.
// Resolves { status, headers, body } (body as text); never rejects on an HTTP status.
function hubRequest(ready, method, path, { headers = {}, body } = {}) {
  const { HostName, SharedAccessKeyName, SharedAccessKey } = ready.service;
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sas = SharedAccessSignature.create(HostName, SharedAccessKeyName, SharedAccessKey, expiry).toString();
  const data = body === undefined ? undefined : Buffer.from(body);
  const allHeaders = { Authorization: sas, ...headers };
  if (data) allHeaders['Content-Length'] = data.length;
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: HostName, port: 443, method, path, headers: allHeaders, ca: ready.ca, timeout: 30000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function main(run) {
  run().then(
    () => process.exit(0),
    (err) => {
      const where = currentFlow ? ` [flow ${currentFlow}]` : '';
      console.error(`FAIL${where}: ${err && err.stack ? err.stack : err}`);
      if (currentFlow) console.error(`compat flow FAILED: ${currentFlow}`);
      process.exit(1);
    },
  );
}

module.exports = { step, flow, withTimeout, Inbox, loadReady, moduleConnectionString, hubRequest, main };
