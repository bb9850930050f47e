// The device-twins tutorial, run with the official Azure IoT Node SDKs (azure-iothub for the
// back end, azure-iot-device + azure-iot-device-mqtt for the device) against the emulator.
//
// Usage: node tutorial.js <ready-file.json>
// The emulator must listen on the standard ports (443 for HTTPS/WebSockets, 8883 for MQTT):
// azure-iothub cannot be pointed at another port. NODE_EXTRA_CA_CERTS must name the emulator CA.
'use strict';

const fs = require('fs');
const assert = require('assert');
const { Registry } = require('azure-iothub');
const { Client } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');

const DEVICE_ID = 'myDeviceId';
const PLANT_QUERY = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'";
const CELLULAR_QUERY = PLANT_QUERY + " AND properties.reported.connectivity.type = 'cellular'";

function step(text) {
  console.log(`[node compat] ${text}`);
}

async function queryDeviceIds(registry, sql, pageSize) {
  const query = registry.createQuery(sql, pageSize);
  const ids = [];
  let pages = 0;
  while (query.hasMoreResults) {
    const { result } = await query.nextAsTwin();
    pages += 1;
    for (const twin of result) ids.push(twin.deviceId);
  }
  return { ids, pages };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runDevice(transport, connectionString, ca, registry, desiredMarker) {
  const client = Client.fromConnectionString(connectionString, transport);
  await client.setOptions({ ca });
  await client.open();
  try {
    const twin = await client.getTwin();
    assert.ok(typeof twin.properties.desired.$version === 'number', 'desired.$version is a number');
    assert.ok(typeof twin.properties.reported.$version === 'number', 'reported.$version is a number');

    await new Promise((resolve, reject) => {
      twin.properties.reported.update({ connectivity: { type: 'cellular' } }, (err) => (err ? reject(err) : resolve()));
    });
    step(`${transport.name}: reported connectivity.type = cellular acknowledged`);

    // A desired patch sent by the back end reaches the device.
    const received = new Promise((resolve) => {
      twin.on('properties.desired', (delta) => {
        if (delta.marker === desiredMarker) resolve(delta);
      });
    });
    // The listener subscribes in the background; a twin GET on the same connection is answered
    // only after the hub processed that SUBSCRIBE, so the patch below cannot overtake it.
    await twin.get();
    const serviceTwin = (await registry.getTwin(DEVICE_ID)).responseBody;
    await serviceTwin.update({ properties: { desired: { marker: desiredMarker } } });
    const delta = await withTimeout(received, 10000, 'the desired-property patch');
    assert.strictEqual(delta.marker, desiredMarker);
    assert.ok(typeof delta.$version === 'number', 'desired patch carries $version');
    step(`${transport.name}: desired patch ${desiredMarker} received with $version ${delta.$version}`);
  } finally {
    await client.close();
  }
}

async function main() {
  const ready = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const ca = fs.readFileSync(ready.ca_file, 'utf8');
  const registry = Registry.fromConnectionString(ready.service_connection_string);
  const deviceConnectionString = ready.devices[DEVICE_ID];
  assert.ok(deviceConnectionString, `the emulator was started with --device ${DEVICE_ID}`);

  // 1. Back end: statistics, tags, first queries.
  const stats = (await registry.getRegistryStatistics()).responseBody;
  step(`registry statistics: total ${stats.totalDeviceCount}, enabled ${stats.enabledDeviceCount}, disabled ${stats.disabledDeviceCount}`);
  assert.ok(stats.totalDeviceCount >= 1);

  const twin = (await registry.getTwin(DEVICE_ID)).responseBody;
  await twin.update({ tags: { location: { region: 'US', plant: 'Redmond43' } } });
  step('tags location.region = US, location.plant = Redmond43 written');

  let result = await queryDeviceIds(registry, PLANT_QUERY);
  assert.ok(result.ids.includes(DEVICE_ID), 'device listed in Redmond43');
  result = await queryDeviceIds(registry, CELLULAR_QUERY);
  assert.ok(!result.ids.includes(DEVICE_ID), 'device not yet listed as cellular');
  step('before the device reports: listed under Redmond43 only');

  // 2. Device over MQTT (8883) and over MQTT-over-WebSockets (443).
  await runDevice(Mqtt, deviceConnectionString, ca, registry, 'mqtt');
  await runDevice(MqttWs, deviceConnectionString, ca, registry, 'mqtt-ws');

  // 3. Back end again: now listed under both headings.
  result = await queryDeviceIds(registry, PLANT_QUERY);
  assert.ok(result.ids.includes(DEVICE_ID));
  result = await queryDeviceIds(registry, CELLULAR_QUERY);
  assert.ok(result.ids.includes(DEVICE_ID), 'device listed as cellular after reporting');
  step('after the device reports: listed under Redmond43 and under cellular');

  // 4. A stale etag is refused with 412.
  const fresh = (await registry.getTwin(DEVICE_ID)).responseBody;
  const staleEtag = fresh.etag;
  await fresh.update({ tags: { touched: 1 } });
  await assert.rejects(
    registry.updateTwin(DEVICE_ID, { tags: { touched: 2 } }, staleEtag),
    (err) => err.constructor.name === 'InvalidEtagError' || (err.response && err.response.statusCode === 412),
    'a stale etag is rejected with 412',
  );
  step('stale etag rejected with 412 PreconditionFailed');

  // 5. Paging: 250 devices, page size 100 → 3 pages, every device once.
  const ids = [];
  for (let i = 0; i < 250; i += 1) ids.push(`node-compat-${String(i).padStart(3, '0')}`);
  for (const deviceId of ids) {
    await registry.create({ deviceId });
    const t = (await registry.getTwin(deviceId)).responseBody;
    await t.update({ tags: { fleet: 'node-compat' } });
  }
  result = await queryDeviceIds(registry, "SELECT * FROM devices WHERE tags.fleet = 'node-compat'", 100);
  assert.strictEqual(result.pages, 3, 'three pages of at most 100');
  assert.deepStrictEqual([...result.ids].sort(), ids, 'every device exactly once');
  step('paged query over 250 devices: 3 pages, each device once');

  // 6. Unknown device → DeviceNotFoundError.
  await assert.rejects(registry.get('no-such-device'), (err) => err.constructor.name === 'DeviceNotFoundError');
  step('unknown device rejected with DeviceNotFoundError');

  console.log('[node compat] OK');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[node compat] FAILED: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
