"""The official Python device SDK (azure-iot-device 2.14.0), unmodified, against the emulator:
MQTT over TLS on 8883 and MQTT over WebSockets on 443 (ports the SDK hard-codes).

Usage: REQUESTS_CA_BUNDLE=<ca.pem> python python_device.py <ready-file>

For each transport: connect with `server_verification_cert`, `get_twin`,
`patch_twin_reported_properties` (checked from the service side too), receive a desired patch
sent by the official Python service SDK (azure-iot-hub), then survive a server-side drop: the
SDK reconnects without resubscribing, relying on the hub keeping its clean-session-0 session,
and must still receive the next desired patch. Also: a wrong key is refused as a credential
error. Exits non-zero on the first mismatch.
"""

import base64
import hashlib
import hmac
import json
import queue
import sys
import time
import urllib.parse

import requests
from azure.iot.device import IoTHubDeviceClient
from azure.iot.device.exceptions import CredentialError
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

from compat_checks import check

WAIT_SECONDS = 20



def parse_connection_string(text):
    return dict(part.split("=", 1) for part in text.split(";"))


def service_token(service_cs, ttl=3600):
    """An `iothubowner` SAS for the emulator's admin endpoints (the SDK has no call for them)."""
    fields = parse_connection_string(service_cs)
    expiry = int(time.time()) + ttl
    resource = urllib.parse.quote(fields["HostName"], safe="")
    key = base64.b64decode(fields["SharedAccessKey"])
    digest = hmac.new(key, f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest), safe="")
    return (
        f"SharedAccessSignature sr={resource}&sig={signature}&se={expiry}"
        f"&skn={fields['SharedAccessKeyName']}"
    )


def wait_until(predicate, what, seconds=WAIT_SECONDS):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            check(True, what)
            return
        time.sleep(0.1)
    check(False, what)


def send_desired(registry, device_id, desired):
    registry.update_twin(device_id, Twin(properties=TwinProperties(desired=desired)), "*")


def next_patch(patches, what):
    try:
        return patches.get(timeout=WAIT_SECONDS)
    except queue.Empty:
        check(False, what)
        return None


def exercise(label, websockets, device_id, device_cs, ca_pem, registry, admin):
    client = IoTHubDeviceClient.create_from_connection_string(
        device_cs,
        server_verification_cert=ca_pem,
        websockets=websockets,
        connection_retry_interval=1,
    )
    patches = queue.Queue()
    # Setting the handler makes the SDK subscribe to desired-property patches.
    client.on_twin_desired_properties_patch_received = patches.put
    states = []
    client.on_connection_state_change = lambda: states.append(client.connected)
    client.connect()
    check(client.connected, f"[{label}] connect with server_verification_cert")
    identity = registry.get_device(device_id)
    check(identity.connection_state == "Connected", f"[{label}] the service sees the device connected")

    twin = client.get_twin()
    check("$version" in twin["desired"] and "$version" in twin["reported"], f"[{label}] get_twin has both $versions")
    reported_version = twin["reported"]["$version"]

    client.patch_twin_reported_properties({"transport": label, "firmware": {"version": "1.0.2"}})
    twin = client.get_twin()
    check(twin["reported"]["transport"] == label, f"[{label}] patch_twin_reported_properties applied")
    check(twin["reported"]["$version"] == reported_version + 1, f"[{label}] reported $version incremented")
    service_view = registry.get_twin(device_id)
    check(service_view.properties.reported["firmware"]["version"] == "1.0.2", f"[{label}] the service reads the reported value")

    send_desired(registry, device_id, {"telemetryInterval": 30, "transport": label})
    patch = next_patch(patches, f"[{label}] desired patch from the service SDK arrives")
    check(patch["telemetryInterval"] == 30 and "$version" in patch, f"[{label}] desired patch body and $version ({patch})")
    desired_version = patch["$version"]

    # Drop the connection from the server side; the SDK reconnects on its own.
    response = requests.post(
        f"https://{parse_connection_string(admin['cs'])['HostName']}/$emulator/faults/drop-connection/{device_id}",
        headers={"Authorization": service_token(admin["cs"])},
        verify=admin["ca_file"],
        timeout=WAIT_SECONDS,
    )
    check(response.status_code == 204, f"[{label}] fault injection drops the connection ({response.status_code})")
    # The SDK reconnects at once, so `connected` is false only briefly: watch the transitions.
    wait_until(lambda: False in states, f"[{label}] the SDK notices the drop")
    wait_until(lambda: states[-1] is True and client.connected, f"[{label}] the SDK reconnects")
    send_desired(registry, device_id, {"telemetryInterval": 60})
    patch = next_patch(patches, f"[{label}] desired patch after the reconnect arrives (session kept)")
    check(patch["telemetryInterval"] == 60, f"[{label}] second desired patch body ({patch})")
    check(patch["$version"] == desired_version + 1, f"[{label}] desired $version incremented")

    client.shutdown()
    wait_until(
        lambda: registry.get_device(device_id).connection_state == "Disconnected",
        f"[{label}] the service sees the device disconnected",
    )


def wrong_key_is_refused(device_cs, ca_pem, label):
    fields = parse_connection_string(device_cs)
    fields["SharedAccessKey"] = base64.b64encode(b"\x01" * 32).decode()
    forged = ";".join(f"{k}={v}" for k, v in fields.items())
    client = IoTHubDeviceClient.create_from_connection_string(forged, server_verification_cert=ca_pem)
    try:
        client.connect()
        check(False, f"[{label}] a wrong key is refused")
    except CredentialError:
        check(True, f"[{label}] a wrong key is refused with CredentialError (CONNACK 5)")
    finally:
        client.shutdown()


def main():
    ready = json.load(open(sys.argv[1]))
    ca_pem = open(ready["ca_file"]).read()
    registry = IoTHubRegistryManager.from_connection_string(ready["service_connection_string"])
    admin = {"cs": ready["service_connection_string"], "ca_file": ready["ca_file"]}
    devices = ready["devices"]
    check(set(devices) >= {"pyDeviceMqtt", "pyDeviceWs"}, "the emulator registered the compat devices")
    check(";" in devices["pyDeviceMqtt"] and "HostName=localhost;" in devices["pyDeviceMqtt"] + ";",
          "device connection string names the standard MQTT port implicitly")

    exercise("mqtt", False, "pyDeviceMqtt", devices["pyDeviceMqtt"], ca_pem, registry, admin)
    exercise("websockets", True, "pyDeviceWs", devices["pyDeviceWs"], ca_pem, registry, admin)
    wrong_key_is_refused(devices["pyDeviceMqtt"], ca_pem, "mqtt")
    print("python device SDK compatibility: all checks passed")


if __name__ == "__main__":
    main()
