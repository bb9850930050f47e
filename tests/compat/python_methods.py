"""Direct methods with the official Python SDKs, unmodified, against the emulator:
azure-iot-hub's IoTHubRegistryManager invokes, azure-iot-device's `on_method_request_received`
answers, over MQTT (8883) and MQTT over WebSockets (443).

Usage: REQUESTS_CA_BUNDLE=<ca.pem> python python_methods.py <ready-file> GROUP...
  device   methods on devices: round trip over MQTT and WebSockets, a 504 when the device does
           not answer in time (a late answer is dropped), connectTimeoutInSeconds waiting for a
           device that connects later, 404 DeviceNotOnline for a device that is not connected
  module   a method on a module identity, answered by IoTHubModuleClient
Each flow prints `== flow: NAME`; the first mismatch prints `compat flow FAILED: NAME`, exit 1.
"""

import queue
import sys
import threading
import time

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, MethodResponse
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod
from msrest.exceptions import HttpOperationError

from compat_checks import check, flow, load_ready, module_connection_string, next_item, parse_connection_string

# Devices the runner registers with --device.
MQTT_DEVICE = "pyMethodsMqtt"
WS_DEVICE = "pyMethodsWs"
OFFLINE_DEVICE = "pyMethodsOffline"
MODULE_DEVICE = "pyMethodsModuleHost"
MODULE_ID = "pyMethodsModule"


class Answerer:
    """The device side: `echo` answers 200 with the payload echoed, `status299` answers 299,
    `slow` records the request and answers only when `release_slow` is called (too late)."""

    def __init__(self, client):
        self.client = client
        self.requests = queue.Queue()
        self.slow = []
        self.lock = threading.Lock()

    def __call__(self, request):
        self.requests.put((request.name, request.payload))
        if request.name == "echo":
            response = MethodResponse.create_from_method_request(request, 200, {"echo": request.payload})
        elif request.name == "status299":
            response = MethodResponse.create_from_method_request(request, 299, "custom status")
        elif request.name == "slow":
            with self.lock:
                self.slow.append(request)
            return
        else:
            response = MethodResponse.create_from_method_request(request, 501, {"unknown": request.name})
        self.client.send_method_response(response)

    def release_slow(self):
        with self.lock:
            pending, self.slow = self.slow, []
        for request in pending:
            self.client.send_method_response(
                MethodResponse.create_from_method_request(request, 200, {"late": True})
            )


def connect(client_class, cs, ca_pem, websockets=False):
    client = client_class.create_from_connection_string(cs, server_verification_cert=ca_pem, websockets=websockets)
    client.connect()
    answerer = Answerer(client)
    # The sync client's setter returns once the hub acknowledged the subscription.
    client.on_method_request_received = answerer
    return client, answerer


def round_trip(registry, label, invoke, answerer):
    payload = {"temperature": 21.5, "unit": "C", "tags": ["a", "b"], "nested": {"on": True}}
    result = invoke(CloudToDeviceMethod(method_name="echo", payload=payload, response_timeout_in_seconds=30))
    name, seen = next_item(answerer.requests, f"[{label}] the handler receives the request")
    check(name == "echo", f"[{label}] the handler sees method name echo ({name})")
    check(seen == payload, f"[{label}] the handler sees the JSON payload ({seen})")
    check(result.status == 200, f"[{label}] invoke returns the device's status 200 ({result.status})")
    check(result.payload == {"echo": payload}, f"[{label}] invoke returns the device's payload ({result.payload})")

    result = invoke(CloudToDeviceMethod(method_name="status299", payload="text payload"))
    name, seen = next_item(answerer.requests, f"[{label}] the handler receives the second request")
    check(seen == "text payload", f"[{label}] a JSON string payload arrives as a string ({seen!r})")
    check(result.status == 299 and result.payload == "custom status",
          f"[{label}] any device status and a string payload come back ({result.status}, {result.payload!r})")


def expect_http_error(call, status, errorcode, what):
    try:
        call()
    except HttpOperationError as e:
        got_code = e.response.headers.get("iothub-errorcode")
        check(e.response.status_code == status,
              f"{what}: HTTP {status} (got {e.response.status_code}, body {e.response.text[:300]})")
        check(got_code == errorcode, f"{what}: iothub-errorcode {errorcode} (got {got_code})")
        return e
    check(False, f"{what}: the call fails")
    return None


def device_flows(ready, registry, ca_pem):
    devices = ready["devices"]
    for label, device_id, websockets in (("mqtt", MQTT_DEVICE, False), ("websockets", WS_DEVICE, True)):
        with flow(f"python methods: invoke_device_method answered by on_method_request_received over {label}"):
            client, answerer = connect(IoTHubDeviceClient, devices[device_id], ca_pem, websockets)
            try:
                round_trip(registry, label, lambda m: registry.invoke_device_method(device_id, m), answerer)
            finally:
                client.shutdown()

    with flow("python methods: no answer within responseTimeoutInSeconds is a 504, a late answer is dropped"):
        client, answerer = connect(IoTHubDeviceClient, devices[MQTT_DEVICE], ca_pem)
        try:
            started = time.monotonic()
            expect_http_error(
                lambda: registry.invoke_device_method(
                    MQTT_DEVICE, CloudToDeviceMethod(method_name="slow", payload={}, response_timeout_in_seconds=5)
                ),
                504, "GatewayTimeout", "a method the device does not answer",
            )
            elapsed = time.monotonic() - started
            check(4.0 <= elapsed <= 30.0, f"the 504 arrives after about the 5 s response timeout ({elapsed:.1f} s)")
            name, _ = next_item(answerer.requests, "the slow request reached the device")
            check(name == "slow", "the device saw the slow method")
            answerer.release_slow()
            result = registry.invoke_device_method(MQTT_DEVICE, CloudToDeviceMethod(method_name="echo", payload=7))
            next_item(answerer.requests, "the next request reaches the device")
            check(result.status == 200 and result.payload == {"echo": 7},
                  f"after a late answer the next call gets its own answer ({result.status}, {result.payload})")
        finally:
            client.shutdown()

    with flow("python methods: connectTimeoutInSeconds waits for the device to come online"):
        # The device connects only after the call was made; the hub holds the call until then.
        clients = []
        connector = threading.Timer(2.0, lambda: clients.append(connect(IoTHubDeviceClient, devices[MQTT_DEVICE], ca_pem)))
        started = time.monotonic()
        connector.start()
        try:
            result = registry.invoke_device_method(
                MQTT_DEVICE,
                CloudToDeviceMethod(method_name="echo", payload="late riser", connect_timeout_in_seconds=30,
                                    response_timeout_in_seconds=30),
            )
            elapsed = time.monotonic() - started
            check(result.status == 200 and result.payload == {"echo": "late riser"},
                  f"the call made before the device connected is answered ({result.status}, {result.payload})")
            check(elapsed >= 1.5, f"the answer came after the device connected ({elapsed:.1f} s)")
        finally:
            connector.join()
            for client, _ in clients:
                client.shutdown()

    with flow("python methods: a registered device that is not connected is 404 DeviceNotOnline"):
        started = time.monotonic()
        expect_http_error(
            lambda: registry.invoke_device_method(OFFLINE_DEVICE, CloudToDeviceMethod(method_name="echo", payload={})),
            404, "DeviceNotOnline", "a method on an offline device",
        )
        elapsed = time.monotonic() - started
        check(elapsed < 10.0, f"with connectTimeoutInSeconds 0 the hub answers at once ({elapsed:.1f} s)")
        expect_http_error(
            lambda: registry.invoke_device_method("pyNoSuchDevice", CloudToDeviceMethod(method_name="echo", payload={})),
            404, "DeviceNotFound", "a method on an unknown device",
        )


def module_flows(ready, registry, ca_pem):
    hostname = parse_connection_string(ready["service_connection_string"])["HostName"]
    with flow("python methods: invoke_device_module_method answered by IoTHubModuleClient"):
        module = registry.create_module_with_sas(MODULE_DEVICE, MODULE_ID, None, None, None)
        key = module.authentication.symmetric_key.primary_key
        check(bool(key), "the hub generated the module's keys")
        cs = module_connection_string(hostname, MODULE_DEVICE, MODULE_ID, key)
        client, answerer = connect(IoTHubModuleClient, cs, ca_pem)
        try:
            round_trip(registry, "module", lambda m: registry.invoke_device_module_method(MODULE_DEVICE, MODULE_ID, m), answerer)
            # The device identity itself has no method subscriber: the module's does not count.
            expect_http_error(
                lambda: registry.invoke_device_method(MODULE_DEVICE, CloudToDeviceMethod(method_name="echo", payload={})),
                404, "DeviceNotOnline", "a device method on the module's parent device (only the module is connected)",
            )
        finally:
            client.shutdown()
        expect_http_error(
            lambda: registry.invoke_device_module_method(
                MODULE_DEVICE, MODULE_ID, CloudToDeviceMethod(method_name="echo", payload={})
            ),
            404, "DeviceNotOnline", "a module method after the module client disconnected",
        )
        expect_http_error(
            lambda: registry.invoke_device_module_method(
                MODULE_DEVICE, "pyNoSuchModule", CloudToDeviceMethod(method_name="echo", payload={})
            ),
            404, "ModuleNotFound", "a method on an unknown module",
        )


def main():
    ready = load_ready(sys.argv[1])
    groups = sys.argv[2:] or ["device"]
    ca_pem = open(ready["ca_file"]).read()
    registry = IoTHubRegistryManager.from_connection_string(ready["service_connection_string"])
    for group in groups:
        {"device": device_flows, "module": module_flows}[group](ready, registry, ca_pem)
    print(f"python direct methods ({', '.join(groups)}): all flows passed")


if __name__ == "__main__":
    main()
