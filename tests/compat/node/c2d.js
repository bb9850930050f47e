// Cloud-to-device messages sent over the hub's REST path and received by the official Node
// device SDK (azure-iot-device: client.on('message') + client.complete), unmodified, over Mqtt
// (8883) and MqttWs (443); delivery feedback read back over REST.
//
// The message is sent the way Azure IoT Explorer sends one: POST /devices/{id}/messages/deviceBound
// with the body as is and the properties in iothub-* headers, signed with a service SAS from
// azure-iot-common (azure-iothub's own Client.send goes over AMQP instead).
//
// Usage: NODE_EXTRA_CA_CERTS=<ca.pem> node c2d.js <ready-file>
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { step, flow, Inbox, loadReady, hubRequest, main } = require('./compat');

const API = '?api-version=2021-04-12';
const FEEDBACK_WAIT_MS = 60000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Reads feedback batches until one holds a record for messageId, completing (DELETE by the
// lock token in ETag) every batch it reads so that later batches come forward.
async function waitForFeedback(ready, messageId) {
  const deadline = Date.now() + FEEDBACK_WAIT_MS;
  while (Date.now() < deadline) {
    const response = await hubRequest(ready, 'GET', `/messages/serviceBound/feedback${API}`);
    if (response.status === 204) {
      await sleep(500);
      continue;
    }
    assert.strictEqual(response.status, 200, `GET feedback answers 200 or 204 (${response.status}: ${response.body})`);
    assert.ok(String(response.headers['content-type']).startsWith('application/vnd.microsoft.iothub.feedback.json'),
      `feedback content type (${response.headers['content-type']})`);
    const lockToken = String(response.headers.etag || '').replace(/"/g, '');
    assert.ok(lockToken, 'the feedback batch carries a lock token in ETag');
    const records = JSON.parse(response.body);
    assert.ok(Array.isArray(records) && records.length > 0, `a JSON array of records (${response.body})`);
    const done = await hubRequest(ready, 'DELETE', `/messages/serviceBound/feedback/${encodeURIComponent(lockToken)}${API}`);
    assert.strictEqual(done.status, 204, `completing the feedback batch answers 204 (${done.status}: ${done.body})`);
    const record = records.find((r) => r.originalMessageId === messageId);
    if (record) return record;
  }
  throw new Error(`no feedback for message ${messageId} within ${FEEDBACK_WAIT_MS} ms`);
}

async function exercise(ready, label, transport, deviceId) {
  await flow(`node c2d: REST deviceBound message received by client.on('message') over ${label}, completed, with feedback`, async () => {
    const client = Client.fromConnectionString(ready.devices[deviceId], transport);
    await client.setOptions({ ca: ready.ca });
    await client.open();
    try {
      const messages = new Inbox();
      client.on('message', (msg) => {
        client.complete(msg, (err, result) => messages.push({ msg, err, result }));
      });
      // The 'message' listener subscribes in the background; a twin round trip on the same
      // connection is answered only after the hub processed that SUBSCRIBE.
      await client.getTwin();

      const messageId = crypto.randomUUID();
      const body = JSON.stringify({ command: 'blink', transport: label, text: 'grüße' });
      const sent = await hubRequest(ready, 'POST', `/devices/${encodeURIComponent(deviceId)}/messages/deviceBound${API}`, {
        headers: {
          'iothub-messageid': messageId,
          'iothub-correlationid': `corr-${label}`,
          'iothub-ack': 'full',
          'iothub-app-color': 'blue',
          'iothub-app-note': 'two words & a / slash',
          'Content-Type': 'application/json',
          'Content-Encoding': 'utf-8',
        },
        body,
      });
      assert.strictEqual(sent.status, 204, `POST messages/deviceBound answers 204 (${sent.status}: ${sent.body})`);

      const { msg, err, result } = await messages.next('the device receives the message');
      assert.ifError(err);
      assert.strictEqual(result.constructor.name, 'MessageCompleted', 'client.complete resolves MessageCompleted');
      assert.strictEqual(msg.data.toString('utf8'), body, 'the body arrives unchanged');
      assert.strictEqual(msg.messageId, messageId, 'messageId');
      assert.strictEqual(msg.correlationId, `corr-${label}`, 'correlationId');
      assert.strictEqual(msg.properties.getValue('color'), 'blue', 'application property color');
      assert.strictEqual(msg.properties.getValue('note'), 'two words & a / slash', 'application property note');
      assert.strictEqual(msg.contentType, 'application/json', 'contentType');
      assert.strictEqual(msg.contentEncoding, 'utf-8', 'contentEncoding');
      step(`${label}: message ${messageId} received with its properties and completed`);

      const record = await waitForFeedback(ready, messageId);
      assert.strictEqual(record.deviceId, deviceId, `the feedback names the device (${JSON.stringify(record)})`);
      assert.strictEqual(record.statusCode, 'Success', `feedback status (${JSON.stringify(record)})`);
      step(`${label}: positive feedback for ${messageId} read and completed`);
    } finally {
      await client.close();
    }
  });
}

main(async () => {
  const ready = loadReady(process.argv[2]);
  await exercise(ready, 'Mqtt', Mqtt, 'nodeC2dMqtt');
  await exercise(ready, 'MqttWs', MqttWs, 'nodeC2dWs');
  console.log('[node compat] c2d: all flows passed');
});
