// Module identities, module twins, IoT Edge devices and the bulk registry with the official Node
// SDKs, unmodified, against the emulator (azure-iothub's Registry; azure-iot-device's
// ModuleClient over azure-iot-device-mqtt).
//
// Usage: NODE_EXTRA_CA_CERTS=<ca.pem> node modules.js <ready-file> GROUP...
//   modules  addModule, getModule, getModulesOnDevice, removeModule; getModuleTwin and
//            updateModuleTwin; a ModuleClient reading and patching its twin; devices.modules queries
//   edge     an IoT Edge device gets its deviceScope; a child device takes it as its parent
//   bulk     addDevices, updateDevices, removeDevices, each with a per-device error
'use strict';

const assert = require('assert');
const { Registry } = require('azure-iothub');
const { ModuleClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { step, flow, withTimeout, loadReady, moduleConnectionString, main } = require('./compat');

const HOST_DEVICE = 'nodeModulesHost';
const EDGE_DEVICE = 'nodeEdge';
const CHILD_DEVICE = 'nodeEdgeChild';

async function rejectsWith(promise, status, errorCode, what) {
  let error;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  assert.ok(error && error.response, `${what}: the call fails with an HTTP error (${error})`);
  assert.strictEqual(error.response.statusCode, status, `${what}: HTTP ${status} (body ${error.responseBody})`);
  assert.strictEqual(error.response.headers['iothub-errorcode'], errorCode, `${what}: iothub-errorcode`);
  step(`${what}: HTTP ${status} ${errorCode} (${error.constructor.name})`);
  return error;
}

async function queryAll(registry, sql) {
  const query = registry.createQuery(sql, 100);
  const twins = [];
  while (query.hasMoreResults) {
    const { result } = await query.nextAsTwin();
    twins.push(...result);
  }
  return twins;
}

async function modules(ready, registry) {
  await flow('node modules: Registry.addModule, getModule, getModulesOnDevice, removeModule', async () => {
    const created = (await registry.addModule({ deviceId: HOST_DEVICE, moduleId: 'nodeModA' })).responseBody;
    assert.strictEqual(created.moduleId, 'nodeModA');
    assert.strictEqual(created.deviceId, HOST_DEVICE);
    assert.strictEqual(created.authentication.symmetricKey.primaryKey.length, 44, 'hub-generated 32-byte key');
    assert.ok(created.etag && created.generationId, 'etag and generationId');
    await registry.addModule({ deviceId: HOST_DEVICE, moduleId: 'nodeModB', managedBy: 'nodeManager' });
    step('two modules created with hub-generated keys');

    await rejectsWith(registry.addModule({ deviceId: HOST_DEVICE, moduleId: 'nodeModA' }), 409,
      'ModuleAlreadyExistsOnDevice', 'adding an existing module');

    const fetched = (await registry.getModule(HOST_DEVICE, 'nodeModA')).responseBody;
    assert.strictEqual(fetched.etag, created.etag, 'getModule returns the same etag');
    assert.strictEqual(fetched.authentication.symmetricKey.primaryKey, created.authentication.symmetricKey.primaryKey);
    const managed = (await registry.getModule(HOST_DEVICE, 'nodeModB')).responseBody;
    assert.strictEqual(managed.managedBy, 'nodeManager', 'managedBy is kept');
    let listed = (await registry.getModulesOnDevice(HOST_DEVICE)).responseBody.map((m) => m.moduleId).sort();
    assert.deepStrictEqual(listed, ['nodeModA', 'nodeModB'], 'getModulesOnDevice lists both');
    step('getModule and getModulesOnDevice agree');

    await registry.removeModule(HOST_DEVICE, 'nodeModB');
    await rejectsWith(registry.getModule(HOST_DEVICE, 'nodeModB'), 404, 'ModuleNotFound', 'getModule after removeModule');
    listed = (await registry.getModulesOnDevice(HOST_DEVICE)).responseBody.map((m) => m.moduleId);
    assert.deepStrictEqual(listed, ['nodeModA'], 'getModulesOnDevice after the removal');
    // removeModule with the module object sends its etag in If-Match (callback form: the
    // promise form of this overload drops the callback in azure-iothub 1.16.6).
    const doomed = (await registry.addModule({ deviceId: HOST_DEVICE, moduleId: 'nodeModTmp' })).responseBody;
    await new Promise((resolve, reject) => registry.removeModule(doomed, (err) => (err ? reject(err) : resolve())));
    await rejectsWith(registry.getModule(HOST_DEVICE, 'nodeModTmp'), 404, 'ModuleNotFound', 'removeModule(module) with its etag');
  });

  await flow('node modules: Registry.getModuleTwin and updateModuleTwin with etags', async () => {
    const twin = (await registry.getModuleTwin(HOST_DEVICE, 'nodeModA')).responseBody;
    assert.strictEqual(twin.moduleId, 'nodeModA');
    assert.strictEqual(twin.deviceId, HOST_DEVICE);
    assert.strictEqual(twin.properties.desired.$version, 1);
    const updated = (await registry.updateModuleTwin(HOST_DEVICE, 'nodeModA',
      { tags: { role: 'sensor' }, properties: { desired: { rate: 5 } } }, twin.etag)).responseBody;
    assert.deepStrictEqual(updated.tags, { role: 'sensor' });
    assert.strictEqual(updated.properties.desired.rate, 5);
    assert.strictEqual(updated.properties.desired.$version, 2);
    assert.notStrictEqual(updated.etag, twin.etag, 'the etag changed');
    await rejectsWith(registry.updateModuleTwin(HOST_DEVICE, 'nodeModA', { tags: { stale: true } }, twin.etag), 412,
      'PreconditionFailed', 'a stale module twin etag');
    // The Twin object of a module updates the module twin too.
    const again = (await registry.getModuleTwin(HOST_DEVICE, 'nodeModA')).responseBody;
    await again.update({ tags: { floor: 2 } });
    const check = (await registry.getModuleTwin(HOST_DEVICE, 'nodeModA')).responseBody;
    assert.deepStrictEqual(check.tags, { role: 'sensor', floor: 2 }, 'Twin.update on a module twin');
    step('module twin read and patched, a stale etag refused');
  });

  await flow('node modules: ModuleClient connects with its connection string, reads and patches its twin', async () => {
    const key = (await registry.getModule(HOST_DEVICE, 'nodeModA')).responseBody.authentication.symmetricKey.primaryKey;
    const client = ModuleClient.fromConnectionString(
      moduleConnectionString(ready.service.HostName, HOST_DEVICE, 'nodeModA', key), Mqtt);
    await client.setOptions({ ca: ready.ca });
    await client.open();
    try {
      const twin = await client.getTwin();
      assert.strictEqual(twin.properties.desired.rate, 5, 'the module reads its desired properties');
      await new Promise((resolve, reject) => {
        twin.properties.reported.update({ status: 'running' }, (err) => (err ? reject(err) : resolve()));
      });
      const serviceView = (await registry.getModuleTwin(HOST_DEVICE, 'nodeModA')).responseBody;
      assert.strictEqual(serviceView.properties.reported.status, 'running', 'the service reads the module report');
      const deviceTwin = (await registry.getTwin(HOST_DEVICE)).responseBody;
      assert.ok(!deviceTwin.properties.reported.status, 'the report did not land on the device twin');
      const module = (await registry.getModule(HOST_DEVICE, 'nodeModA')).responseBody;
      assert.strictEqual(module.connectionState, 'Connected', 'the service sees the module connected');

      const received = new Promise((resolve) => {
        twin.on('properties.desired', (delta) => { if (delta.rate === 10) resolve(delta); });
      });
      // The listener subscribes in the background; a twin GET on the same connection is
      // answered only after the hub processed that SUBSCRIBE.
      await twin.get();
      await registry.updateModuleTwin(HOST_DEVICE, 'nodeModA', { properties: { desired: { rate: 10 } } }, '*');
      const delta = await withTimeout(received, 20000, 'the desired patch on the module');
      assert.strictEqual(typeof delta.$version, 'number');
      step(`module client: twin read, reported status, desired patch ${delta.$version} received`);
    } finally {
      await client.close();
    }
  });

  await flow('node modules: createQuery SELECT * FROM devices.modules', async () => {
    await registry.addModule({ deviceId: HOST_DEVICE, moduleId: 'nodeModC' });
    let twins = await queryAll(registry, 'SELECT * FROM devices.modules');
    const mine = twins.filter((t) => t.deviceId === HOST_DEVICE).map((t) => t.moduleId).sort();
    assert.deepStrictEqual(mine, ['nodeModA', 'nodeModC'], 'every module twin of the device is listed');
    twins = await queryAll(registry, "SELECT * FROM devices.modules WHERE properties.reported.status = 'running'");
    // (other scripts' modules share this hub: look at this device's only)
    assert.deepStrictEqual(twins.filter((t) => t.deviceId === HOST_DEVICE).map((t) => t.moduleId), ['nodeModA'],
      'a filter on reported properties selects the running module');
    twins = await queryAll(registry, 'SELECT * FROM devices');
    assert.ok(twins.every((t) => !t.moduleId), 'a devices query lists no module twins');
    step('devices.modules queries list module twins only');
  });
}

async function edge(ready, registry) {
  await flow('node edge: an IoT Edge device gets a deviceScope, a child device takes it as its parent', async () => {
    const parent = (await registry.create({ deviceId: EDGE_DEVICE, capabilities: { iotEdge: true } })).responseBody;
    assert.strictEqual(parent.capabilities.iotEdge, true);
    assert.strictEqual(parent.deviceScope, `ms-azure-iot-edge://${EDGE_DEVICE}-${parent.generationId}`, 'deviceScope form');
    const child = (await registry.create({ deviceId: CHILD_DEVICE, deviceScope: parent.deviceScope })).responseBody;
    assert.strictEqual(child.capabilities.iotEdge, false, 'the child is a leaf device');
    assert.strictEqual(child.deviceScope, parent.deviceScope, "the child takes the parent's scope");
    assert.deepStrictEqual(child.parentScopes, [parent.deviceScope], 'parentScopes names the parent');
    const fetched = (await registry.get(CHILD_DEVICE)).responseBody;
    assert.strictEqual(fetched.deviceScope, parent.deviceScope, 'get returns the scope');
    const edgeIds = (await queryAll(registry, 'SELECT * FROM devices WHERE capabilities.iotEdge = true')).map((t) => t.deviceId);
    assert.ok(edgeIds.includes(EDGE_DEVICE) && !edgeIds.includes(CHILD_DEVICE), `query on capabilities.iotEdge (${edgeIds})`);
    const children = await queryAll(registry, `SELECT * FROM devices WHERE ARRAY_CONTAINS(parentScopes, '${parent.deviceScope}')`);
    assert.deepStrictEqual(children.map((t) => t.deviceId), [CHILD_DEVICE], 'ARRAY_CONTAINS(parentScopes, scope) lists the child');
    const system = (await registry.getModulesOnDevice(EDGE_DEVICE)).responseBody.map((m) => m.moduleId).sort();
    assert.deepStrictEqual(system, ['$edgeAgent', '$edgeHub'], 'the Edge system modules');
    await registry.create({ deviceId: 'nodeLeafParent' });
    await rejectsWith(registry.create({ deviceId: 'nodeOrphan', deviceScope: 'ms-azure-iot-edge://nodeLeafParent-1' }),
      400, 'InvalidDeviceScope', 'a scope that names no Edge device');
    step(`Edge device scope ${parent.deviceScope}; child attached`);
  });
}

// A bulk call's BulkRegistryOperationResult and HTTP status. The hub answers 200 when every
// entry succeeded and 400 with the same result shape when some failed; azure-iothub rejects the
// 400 with an ArgumentError that keeps the body in responseBody.
async function bulkCall(promise) {
  try {
    const { responseBody, httpResponse } = await promise;
    return { status: httpResponse.statusCode, result: responseBody };
  } catch (err) {
    if (!(err instanceof Error && err.constructor.name === 'ArgumentError' && err.response)) throw err;
    return { status: err.response.statusCode, result: JSON.parse(err.responseBody) };
  }
}

async function bulk(ready, registry) {
  const ids = ['nodeBulk1', 'nodeBulk2', 'nodeBulk3'];
  await flow('node bulk: Registry.addDevices, with a per-device error', async () => {
    let { status, result } = await bulkCall(registry.addDevices(ids.map((deviceId) => ({ deviceId }))));
    assert.strictEqual(status, 200, 'every entry succeeded: 200');
    assert.strictEqual(result.isSuccessful, true, `addDevices succeeds (${JSON.stringify(result)})`);
    assert.deepStrictEqual(result.errors, [], 'no errors');
    for (const deviceId of ids) {
      const device = (await registry.get(deviceId)).responseBody;
      assert.strictEqual(device.authentication.symmetricKey.primaryKey.length, 44, `${deviceId} has hub-generated keys`);
    }
    // One entry fails (it exists), the other is still created: atomic per device, not per call.
    ({ status, result } = await bulkCall(registry.addDevices([{ deviceId: 'nodeBulk1' }, { deviceId: 'nodeBulk4' }])));
    assert.strictEqual(status, 400, 'a failed entry: 400 with the per-entry errors');
    assert.strictEqual(result.isSuccessful, false, 'a failed entry makes isSuccessful false');
    assert.strictEqual(result.errors.length, 1, `one error (${JSON.stringify(result.errors)})`);
    assert.strictEqual(result.errors[0].deviceId, 'nodeBulk1');
    assert.strictEqual(result.errors[0].errorCode, 'DeviceAlreadyExists');
    assert.ok((await registry.get('nodeBulk4')).responseBody, 'the other entry was created');
    step('addDevices: three created; then one DeviceAlreadyExists error and one created');
  });

  await flow('node bulk: Registry.updateDevices, forced and with etags', async () => {
    const current = (await registry.get('nodeBulk1')).responseBody;
    let { status, result } = await bulkCall(registry.updateDevices(
      [{ deviceId: 'nodeBulk1', status: 'disabled' }, { deviceId: 'nodeBulk2', status: 'disabled' }], true));
    assert.strictEqual(status, 200);
    assert.strictEqual(result.isSuccessful, true, `forced update succeeds (${JSON.stringify(result)})`);
    assert.strictEqual((await registry.get('nodeBulk1')).responseBody.status, 'disabled');
    assert.strictEqual((await registry.get('nodeBulk2')).responseBody.status, 'disabled');
    // The etag read before that update is stale now; nodeBulk3's is fresh.
    const fresh = (await registry.get('nodeBulk3')).responseBody;
    ({ status, result } = await bulkCall(registry.updateDevices([
      { deviceId: 'nodeBulk1', status: 'enabled', etag: current.etag },
      { deviceId: 'nodeBulk3', status: 'disabled', etag: fresh.etag },
    ], false)));
    assert.strictEqual(status, 400);
    assert.strictEqual(result.isSuccessful, false, 'a stale etag makes isSuccessful false');
    assert.deepStrictEqual(result.errors.map((e) => e.deviceId), ['nodeBulk1'], `the stale entry fails (${JSON.stringify(result.errors)})`);
    assert.strictEqual(result.errors[0].errorCode, 'PreconditionFailed');
    assert.strictEqual((await registry.get('nodeBulk1')).responseBody.status, 'disabled', 'the stale entry was not applied');
    assert.strictEqual((await registry.get('nodeBulk3')).responseBody.status, 'disabled', 'the fresh entry was applied');
    step('updateDevices: forced update applied; stale etag refused per device');
  });

  await flow('node bulk: Registry.removeDevices, with a per-device error', async () => {
    let { status, result } = await bulkCall(registry.removeDevices(
      [{ deviceId: 'nodeBulk1' }, { deviceId: 'nodeBulkMissing' }], true));
    assert.strictEqual(status, 400);
    assert.strictEqual(result.isSuccessful, false, 'a missing device makes isSuccessful false');
    assert.deepStrictEqual(result.errors.map((e) => e.deviceId), ['nodeBulkMissing'], `one error (${JSON.stringify(result.errors)})`);
    assert.strictEqual(result.errors[0].errorCode, 'DeviceNotFound');
    await rejectsWith(registry.get('nodeBulk1'), 404, 'DeviceNotFound', 'the removed device');
    ({ status, result } = await bulkCall(registry.removeDevices(
      ['nodeBulk2', 'nodeBulk3', 'nodeBulk4'].map((deviceId) => ({ deviceId })), true)));
    assert.strictEqual(status, 200);
    assert.strictEqual(result.isSuccessful, true, `removing the rest succeeds (${JSON.stringify(result)})`);
    for (const deviceId of ['nodeBulk2', 'nodeBulk3', 'nodeBulk4']) {
      await rejectsWith(registry.get(deviceId), 404, 'DeviceNotFound', `${deviceId} removed`);
    }
    step('removeDevices: removed; a missing device is a per-device DeviceNotFound');
  });
}

main(async () => {
  const ready = loadReady(process.argv[2]);
  const groups = process.argv.length > 3 ? process.argv.slice(3) : ['modules'];
  const registry = Registry.fromConnectionString(ready.service_connection_string);
  for (const group of groups) {
    const run = { modules, edge, bulk }[group];
    assert.ok(run, `unknown group ${group}`);
    await run(ready, registry);
  }
  console.log(`[node compat] ${groups.join(', ')}: all flows passed`);
});
