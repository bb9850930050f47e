// Direct methods with the official Node SDKs, unmodified, against the emulator: azure-iothub's
// Client.invokeDeviceMethod calls, azure-iot-device's onDeviceMethod (ModuleClient.onMethod for
// a module) answers, over MQTT (8883) and MQTT over WebSockets (443).
//
// Usage: NODE_EXTRA_CA_CERTS=<ca.pem> node methods.js <ready-file> GROUP...
//   device   round trip over Mqtt and MqttWs, 8 calls in flight on one device, 504 when the
//            device does not answer in time (a late answer is dropped), 404 DeviceNotOnline for
//            a registered device that is not connected
//   module   Client.invokeDeviceMethod(deviceId, moduleId, ...) answered by a ModuleClient
'use strict';

const assert = require('assert');
const { Client: ServiceClient, Registry } = require('azure-iothub');
const { Client: DeviceClient, ModuleClient } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { step, flow, Inbox, loadReady, moduleConnectionString, main } = require('./compat');

const MQTT_DEVICE = 'nodeMethodsMqtt';
const WS_DEVICE = 'nodeMethodsWs';
const OFFLINE_DEVICE = 'nodeMethodsOffline';
const MODULE_DEVICE = 'nodeMethodsModuleHost';
const MODULE_ID = 'nodeMethodsModule';

// Registers echo / status299 / slow on a device or module client; returns what it saw.
function answer(register) {
  const requests = new Inbox();
  const slow = [];
  register('echo', (request, response) => {
    requests.push({ name: request.methodName, payload: request.payload });
    response.send(200, { echo: request.payload });
  });
  register('status299', (request, response) => {
    requests.push({ name: request.methodName, payload: request.payload });
    response.send(299, 'custom status');
  });
  register('slow', (request, response) => {
    requests.push({ name: request.methodName, payload: request.payload });
    slow.push(response);
  });
  return {
    requests,
    releaseSlow: () => Promise.all(slow.splice(0).map((response) => response.send(200, { late: true }))),
  };
}

async function openClient(clientClass, transport, connectionString, ca) {
  const client = clientClass.fromConnectionString(connectionString, transport);
  await client.setOptions({ ca });
  await client.open();
  return client;
}

async function withMethods(client, register) {
  const answerer = answer(register);
  // onDeviceMethod subscribes in the background; a twin round trip on the same connection is
  // answered only after the hub has processed that SUBSCRIBE.
  await client.getTwin();
  return answerer;
}

async function roundTrip(label, invoke, answerer) {
  const payload = { temperature: 21.5, unit: 'C', tags: ['a', 'b'], nested: { on: true } };
  let { result } = await invoke({ methodName: 'echo', payload, responseTimeoutInSeconds: 30 });
  let seen = await answerer.requests.next(`[${label}] the handler receives the request`);
  assert.strictEqual(seen.name, 'echo');
  assert.deepStrictEqual(seen.payload, payload, `[${label}] the handler sees the JSON payload`);
  assert.strictEqual(result.status, 200, `[${label}] invoke returns the device's status`);
  assert.deepStrictEqual(result.payload, { echo: payload }, `[${label}] invoke returns the device's payload`);
  step(`${label}: echo round trip, status 200 and payload intact`);

  ({ result } = await invoke({ methodName: 'status299', payload: 'text payload' }));
  seen = await answerer.requests.next(`[${label}] the handler receives the second request`);
  assert.strictEqual(seen.payload, 'text payload', `[${label}] a JSON string payload arrives as a string`);
  assert.strictEqual(result.status, 299, `[${label}] any device status comes back`);
  assert.strictEqual(result.payload, 'custom status', `[${label}] a string payload comes back`);
  step(`${label}: status 299 and a string payload come back`);
}

async function expectHttpError(promise, status, errorCode, what) {
  let error;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  assert.ok(error, `${what}: the call fails`);
  assert.ok(error.response, `${what}: an HTTP error (${error})`);
  assert.strictEqual(error.response.statusCode, status, `${what}: HTTP ${status} (body ${error.responseBody})`);
  assert.strictEqual(error.response.headers['iothub-errorcode'], errorCode, `${what}: iothub-errorcode`);
  step(`${what}: HTTP ${status} ${errorCode} (${error.constructor.name})`);
  return error;
}

async function deviceFlows(ready, service) {
  for (const [label, deviceId, transport] of [['Mqtt', MQTT_DEVICE, Mqtt], ['MqttWs', WS_DEVICE, MqttWs]]) {
    await flow(`node methods: Client.invokeDeviceMethod answered by onDeviceMethod over ${label}`, async () => {
      const client = await openClient(DeviceClient, transport, ready.devices[deviceId], ready.ca);
      try {
        const answerer = await withMethods(client, (name, handler) => client.onDeviceMethod(name, handler));
        await roundTrip(label, (params) => service.invokeDeviceMethod(deviceId, params), answerer);
      } finally {
        await client.close();
      }
    });
  }

  await flow('node methods: several calls in flight at once on one device, each gets its own answer', async () => {
    const client = await openClient(DeviceClient, Mqtt, ready.devices[MQTT_DEVICE], ready.ca);
    try {
      await withMethods(client, (name, handler) => client.onDeviceMethod(name, handler));
      const calls = [];
      for (let i = 0; i < 8; i += 1) {
        calls.push(service.invokeDeviceMethod(MQTT_DEVICE, { methodName: 'echo', payload: { call: i } }));
      }
      const results = await Promise.all(calls);
      results.forEach(({ result }, i) => {
        assert.strictEqual(result.status, 200);
        assert.deepStrictEqual(result.payload, { echo: { call: i } }, `call ${i} gets its own answer`);
      });
      step('8 concurrent calls on one device, each answered with its own payload');
    } finally {
      await client.close();
    }
  });

  await flow('node methods: no answer within responseTimeoutInSeconds is a 504, a late answer is dropped', async () => {
    const client = await openClient(DeviceClient, Mqtt, ready.devices[MQTT_DEVICE], ready.ca);
    try {
      const answerer = await withMethods(client, (name, handler) => client.onDeviceMethod(name, handler));
      const started = Date.now();
      const err = await expectHttpError(
        service.invokeDeviceMethod(MQTT_DEVICE, { methodName: 'slow', payload: {}, responseTimeoutInSeconds: 5 }),
        504, 'GatewayTimeout', 'a method the device does not answer',
      );
      assert.strictEqual(err.constructor.name, 'GatewayTimeoutError', 'azure-iothub surfaces a GatewayTimeoutError');
      const elapsed = (Date.now() - started) / 1000;
      assert.ok(elapsed >= 4 && elapsed <= 30, `the 504 arrives after about the 5 s response timeout (${elapsed} s)`);
      const seen = await answerer.requests.next('the slow request reached the device');
      assert.strictEqual(seen.name, 'slow');
      await answerer.releaseSlow();
      const { result } = await service.invokeDeviceMethod(MQTT_DEVICE, { methodName: 'echo', payload: 7 });
      await answerer.requests.next('the next request reaches the device');
      assert.strictEqual(result.status, 200);
      assert.deepStrictEqual(result.payload, { echo: 7 }, 'after a late answer the next call gets its own answer');
      step('a late answer after the 504 is dropped; the next call gets its own answer');
    } finally {
      await client.close();
    }
  });

  await flow('node methods: a registered device that is not connected is 404 DeviceNotOnline', async () => {
    const started = Date.now();
    await expectHttpError(
      service.invokeDeviceMethod(OFFLINE_DEVICE, { methodName: 'echo', payload: {} }),
      404, 'DeviceNotOnline', 'a method on an offline device',
    );
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(elapsed < 10, `with connectTimeoutInSeconds 0 the hub answers at once (${elapsed} s)`);
    const err = await expectHttpError(
      service.invokeDeviceMethod('nodeNoSuchDevice', { methodName: 'echo', payload: {} }),
      404, 'DeviceNotFound', 'a method on an unknown device',
    );
    assert.strictEqual(err.constructor.name, 'DeviceNotFoundError', 'azure-iothub surfaces a DeviceNotFoundError');
  });
}

async function moduleFlows(ready, service) {
  await flow('node methods: Client.invokeDeviceMethod(deviceId, moduleId) answered by ModuleClient.onMethod', async () => {
    const registry = Registry.fromConnectionString(ready.service_connection_string);
    const module = (await registry.addModule({ deviceId: MODULE_DEVICE, moduleId: MODULE_ID })).responseBody;
    const key = module.authentication.symmetricKey.primaryKey;
    assert.ok(key, 'the hub generated the module keys');
    const cs = moduleConnectionString(ready.service.HostName, MODULE_DEVICE, MODULE_ID, key);
    const client = await openClient(ModuleClient, Mqtt, cs, ready.ca);
    try {
      const answerer = await withMethods(client, (name, handler) => client.onMethod(name, handler));
      await roundTrip('module', (params) => service.invokeDeviceMethod(MODULE_DEVICE, MODULE_ID, params), answerer);
      await expectHttpError(
        service.invokeDeviceMethod(MODULE_DEVICE, { methodName: 'echo', payload: {} }),
        404, 'DeviceNotOnline', "a device method on the module's parent device (only the module is connected)",
      );
    } finally {
      await client.close();
    }
    await expectHttpError(
      service.invokeDeviceMethod(MODULE_DEVICE, MODULE_ID, { methodName: 'echo', payload: {} }),
      404, 'DeviceNotOnline', 'a module method after the module client disconnected',
    );
  });
}

main(async () => {
  const ready = loadReady(process.argv[2]);
  const groups = process.argv.length > 3 ? process.argv.slice(3) : ['device'];
  const service = ServiceClient.fromConnectionString(ready.service_connection_string);
  for (const group of groups) {
    await ({ device: deviceFlows, module: moduleFlows })[group](ready, service);
  }
  console.log(`[node compat] direct methods (${groups.join(', ')}): all flows passed`);
});
