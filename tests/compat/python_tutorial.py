"""The whole device-twins tutorial with the official Python SDKs, unmodified, against the emulator:
azure-iot-hub (AddTagsAndQuery) and azure-iot-device (ReportConnectivity), over MQTT and over
MQTT-over-WebSockets.

Usage: REQUESTS_CA_BUNDLE=<ca.pem> python python_tutorial.py <ready-file>

1. The back end tags myDeviceId with location region US / plant Redmond43 and runs both tutorial
   queries: the device is listed under Redmond43 only.
2. The device connects (server_verification_cert), reads its twin, reports
   {"connectivity": {"type": "cellular"}} and receives a desired patch that the back end sends.
3. The back end runs both queries again: the device is listed under both.
Exits non-zero on the first mismatch.
"""

import json
import queue
import sys
import time

from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

from compat_checks import check, run_query

DEVICE_ID = "myDeviceId"
PLANT_QUERY = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"
CELLULAR_QUERY = PLANT_QUERY + " AND properties.reported.connectivity.type = 'cellular'"
WAIT_SECONDS = 10




def back_end(registry, expect_cellular):
    stats = registry.get_device_registry_statistics()
    print(f"Total device count                       : {stats.total_device_count}")
    print(f"Enabled device count                     : {stats.enabled_device_count}")
    print(f"Disabled device count                    : {stats.disabled_device_count}")
    twin = registry.get_twin(DEVICE_ID)
    registry.update_twin(DEVICE_ID, Twin(tags={"location": {"region": "US", "plant": "Redmond43"}}), twin.etag)
    plant = [twin.device_id for twin in run_query(registry, PLANT_QUERY, 100)[0]]
    cellular = [twin.device_id for twin in run_query(registry, CELLULAR_QUERY, 100)[0]]
    print(f"Devices in Redmond43: {plant}")
    print(f"Devices in Redmond43 using cellular network: {cellular}")
    check(plant == [DEVICE_ID], "the device is listed under Redmond43")
    if expect_cellular:
        check(cellular == [DEVICE_ID], "the device is listed under cellular too")
    else:
        check(cellular == [], "the device is not yet listed under cellular")


def device(registry, device_cs, ca_pem, websockets, marker):
    label = "mqtt-ws" if websockets else "mqtt"
    client = IoTHubDeviceClient.create_from_connection_string(
        device_cs, server_verification_cert=ca_pem, websockets=websockets
    )
    patches = queue.Queue()
    client.on_twin_desired_properties_patch_received = patches.put
    client.connect()
    try:
        twin = client.get_twin()
        check("$version" in twin["reported"], f"[{label}] get_twin returns the reported $version")
        client.patch_twin_reported_properties({"connectivity": {"type": "cellular"}})
        print(f"[{label}] Confirmation for reported state: connectivity.type = cellular")
        check(
            client.get_twin()["reported"]["connectivity"] == {"type": "cellular"},
            f"[{label}] the reported connectivity is in the twin",
        )
        twin = registry.get_twin(DEVICE_ID)
        registry.update_twin(DEVICE_ID, Twin(properties=TwinProperties(desired={"marker": marker})), twin.etag)
        # After connecting, the SDK itself GETs the twin and hands over the desired document it
        # found as a first "patch" (its EnsureDesiredProperties stage), so skip older ones.
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                patch = patches.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                check(False, f"[{label}] the desired patch arrives within {WAIT_SECONDS} s")
            if patch.get("marker") == marker:
                break
        check("$version" in patch, f"[{label}] desired patch received ({patch})")
    finally:
        client.shutdown()


def main():
    ready = json.load(open(sys.argv[1]))
    with open(ready["ca_file"]) as f:
        ca_pem = f.read()
    registry = IoTHubRegistryManager.from_connection_string(ready["service_connection_string"])
    device_cs = ready["devices"][DEVICE_ID]

    print("Starting the IoT Hub Device Twins Python service sample...")
    back_end(registry, expect_cellular=False)
    print("Starting the IoT Hub Device Twins Python client sample...")
    device(registry, device_cs, ca_pem, websockets=False, marker="mqtt")
    device(registry, device_cs, ca_pem, websockets=True, marker="mqtt-ws")
    print("Starting the IoT Hub Device Twins Python service sample...")
    back_end(registry, expect_cellular=True)
    print("python tutorial: OK")


if __name__ == "__main__":
    main()
