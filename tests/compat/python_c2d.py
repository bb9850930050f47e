"""Cloud-to-device messages sent over the hub's REST path and received by the official Python
device SDK (azure-iot-device `on_message_received`), unmodified, over MQTT (8883) and MQTT over
WebSockets (443); delivery feedback read back over REST and completed with azure-iot-hub's
IoTHubHttpRuntimeManager.

The message is sent the way Azure IoT Explorer sends one: `POST /devices/{id}/messages/deviceBound`
with the body as is and the properties in `iothub-*` headers, signed with a service SAS made by
azure-iot-hub's own SasToken helper (the service SDK's send_c2d_message goes over AMQP instead).

Usage: REQUESTS_CA_BUNDLE=<ca.pem> python python_c2d.py <ready-file>
Each flow prints `== flow: NAME`; the first mismatch prints `compat flow FAILED: NAME`, exit 1.
"""

import json
import queue
import sys
import time
import uuid

import requests
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubHttpRuntimeManager
from azure.iot.hub.sastoken import SasToken

from compat_checks import check, flow, load_ready, next_item, parse_connection_string

API_VERSION = "2021-04-12"
FEEDBACK_WAIT_SECONDS = 60


class Hub:
    """Plain HTTPS to the hub's REST API with a service SAS from the SDK's SasToken."""

    def __init__(self, ready):
        fields = parse_connection_string(ready["service_connection_string"])
        self.host = fields["HostName"]
        self.token = SasToken(self.host, fields["SharedAccessKey"], fields["SharedAccessKeyName"])
        self.ca_file = ready["ca_file"]

    def request(self, method, path, headers=None, body=None):
        all_headers = {"Authorization": str(self.token)}
        all_headers.update(headers or {})
        return requests.request(
            method, f"https://{self.host}{path}?api-version={API_VERSION}",
            headers=all_headers, data=body, verify=self.ca_file, timeout=30,
        )


def send_c2d(hub, device_id, body, message_id, correlation_id, properties):
    headers = {
        "iothub-messageid": message_id,
        "iothub-correlationid": correlation_id,
        "iothub-ack": "full",
        "Content-Type": "application/json",
        "Content-Encoding": "utf-8",
    }
    headers.update({f"iothub-app-{k}": v for k, v in properties.items()})
    return hub.request("POST", f"/devices/{device_id}/messages/deviceBound", headers, body.encode())


def send_c2d_like_explorer(hub, device_id, body, message_id):
    """Azure IoT Explorer's headers: every property row (its "system property" picks too) as an
    `iothub-app-` header, `Content-Encoding: utf-8`. (Explorer also percent-encodes the whole
    path, `/devices%2F{id}%2Fmessages%2FdeviceBound`; the emulator does not route that yet.)"""
    headers = {
        "iothub-app-messageId": message_id,
        "iothub-app-ack": "positive",
        "iothub-app-shade": "teal",
        "Content-Encoding": "utf-8",
    }
    return hub.request("POST", f"/devices/{device_id}/messages/deviceBound", headers, body.encode())


def wait_for_feedback(hub, runtime, message_id, abandon_first=False):
    """Reads feedback batches until one holds a record for `message_id`; completes every batch
    it reads (by the lock token in its ETag) so other batches come forward. Returns the record.
    With `abandon_first`, the batch holding the record is first abandoned and must come back."""
    deadline = time.time() + FEEDBACK_WAIT_SECONDS
    while time.time() < deadline:
        response = hub.request("GET", "/messages/serviceBound/feedback")
        if response.status_code == 204:
            time.sleep(0.5)
            continue
        check(response.status_code == 200, f"GET feedback answers 200 or 204 ({response.status_code}: {response.text[:200]})")
        check(response.headers.get("Content-Type", "").startswith("application/vnd.microsoft.iothub.feedback.json"),
              f"the feedback batch has the feedback content type ({response.headers.get('Content-Type')})")
        lock_token = response.headers.get("ETag", "").strip('"')
        check(bool(lock_token), "the feedback batch carries a lock token in ETag")
        records = response.json()
        check(isinstance(records, list) and records, f"the feedback batch is a JSON array of records ({records})")
        mine = [r for r in records if r.get("originalMessageId") == message_id]
        if mine and abandon_first:
            runtime.abandon_feedback_notification(lock_token)
            check(True, "IoTHubHttpRuntimeManager.abandon_feedback_notification accepts the lock token (204); the batch must come back")
            abandon_first = False
            continue
        runtime.complete_feedback_notification(lock_token)
        if mine:
            return mine[0]
    check(False, f"feedback for message {message_id} arrives within {FEEDBACK_WAIT_SECONDS} s")
    return None


def exercise(label, websockets, device_id, device_cs, ca_pem, hub, runtime):
    with flow(f"python c2d: REST deviceBound message received by on_message_received over {label}, with feedback"):
        client = IoTHubDeviceClient.create_from_connection_string(
            device_cs, server_verification_cert=ca_pem, websockets=websockets
        )
        # A message sent while the device is offline waits in its queue.
        queued_id = str(uuid.uuid4())
        response = send_c2d_like_explorer(hub, device_id, f"queued for {label}", queued_id)
        check(response.status_code == 204,
              f"an IoT Explorer-style POST (iothub-app- rows only) answers 204 ({response.status_code}: {response.text[:200]})")
        client.connect()
        messages = queue.Queue()
        # The sync setter returns once the hub acknowledged the devicebound subscription.
        client.on_message_received = messages.put
        try:
            message = next_item(messages, "the message queued while offline arrives after connect")
            check(message.data == f"queued for {label}".encode(), f"the queued body ({message.data!r})")
            check(message.message_id == queued_id, f"Explorer's messageId row became the message id ({message.message_id})")
            check(message.ack == "positive", f"Explorer's ack row became the ack ({message.ack})")
            check(message.custom_properties == {"shade": "teal"}, f"Explorer's other rows are custom properties ({message.custom_properties})")
            record = wait_for_feedback(hub, runtime, queued_id, abandon_first=True)
            check(record.get("statusCode") == "Success", f"positive feedback for the queued message ({record})")

            message_id = str(uuid.uuid4())
            correlation_id = f"corr-{label}"
            body = json.dumps({"command": "blink", "transport": label, "text": "grüße"}, ensure_ascii=False)
            properties = {"color": "blue", "note": "two words & a / slash"}
            response = send_c2d(hub, device_id, body, message_id, correlation_id, properties)
            check(response.status_code == 204, f"POST messages/deviceBound answers 204 ({response.status_code}: {response.text[:200]})")

            message = next_item(messages, "the device receives the message")
            check(message.data.decode("utf-8") == body, f"the body arrives unchanged ({message.data!r})")
            check(message.message_id == message_id, f"message_id ({message.message_id})")
            check(message.correlation_id == correlation_id, f"correlation_id ({message.correlation_id})")
            check(message.custom_properties == properties, f"custom properties ({message.custom_properties})")
            check(message.ack == "full", f"ack ({message.ack})")
            check(message.content_type == "application/json", f"content_type ({message.content_type})")
            check(message.content_encoding == "utf-8", f"content_encoding ({message.content_encoding})")

            record = wait_for_feedback(hub, runtime, message_id)
            check(record.get("deviceId") == device_id, f"the feedback names the device ({record})")
            check(record.get("statusCode") == "Success", f"the feedback status is Success ({record})")
            check(bool(record.get("enqueuedTimeUtc")), "the feedback record has enqueuedTimeUtc")
        finally:
            client.shutdown()


def main():
    ready = load_ready(sys.argv[1])
    ca_pem = open(ready["ca_file"]).read()
    hub = Hub(ready)
    runtime = IoTHubHttpRuntimeManager.from_connection_string(ready["service_connection_string"])
    devices = ready["devices"]
    exercise("mqtt", False, "pyC2dMqtt", devices["pyC2dMqtt"], ca_pem, hub, runtime)
    exercise("websockets", True, "pyC2dWs", devices["pyC2dWs"], ca_pem, hub, runtime)
    print("python c2d: all flows passed")


if __name__ == "__main__":
    main()
