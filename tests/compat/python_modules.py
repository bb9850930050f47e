"""Module identities, module twins and IoT Edge devices with the official Python SDKs,
unmodified, against the emulator (azure-iot-hub's IoTHubRegistryManager; azure-iot-device's
IoTHubModuleClient over MQTT).

Usage: REQUESTS_CA_BUNDLE=<ca.pem> python python_modules.py <ready-file> GROUP...
  modules  create (hub-generated and caller-given keys), get, list, delete; module twin get and
           patch with etags; a module client connecting with its connection string, reading its
           twin, reporting and receiving a desired patch; `SELECT * FROM devices.modules`;
           deleting a device deletes its modules
  edge     an IoT Edge device gets its deviceScope; a child device takes that scope as its parent
Each flow prints `== flow: NAME`; the first mismatch prints `compat flow FAILED: NAME`, exit 1.
"""

import base64
import queue
import re
import sys

from azure.iot.device import IoTHubModuleClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from compat_checks import (
    check, flow, load_ready, module_connection_string, next_item, parse_connection_string, run_query, wait_until,
)

HOST_DEVICE = "pyModulesHost"
CASCADE_DEVICE = "pyModulesCascade"
EDGE_DEVICE = "pyEdge"
CHILD_DEVICE = "pyEdgeChild"


def expect_http_error(call, status, errorcode, what):
    try:
        call()
    except HttpOperationError as e:
        got_code = e.response.headers.get("iothub-errorcode")
        check(e.response.status_code == status,
              f"{what}: HTTP {status} (got {e.response.status_code}, body {e.response.text[:300]})")
        check(got_code == errorcode, f"{what}: iothub-errorcode {errorcode} (got {got_code})")
        return
    check(False, f"{what}: the call fails")


def module_identities(registry):
    with flow("python modules: create_module_with_sas, get_module, get_modules, delete_module"):
        generated = registry.create_module_with_sas(HOST_DEVICE, "pyModA", None, None, None)
        check(generated.module_id == "pyModA" and generated.device_id == HOST_DEVICE,
              f"create returns the module ({generated.device_id}/{generated.module_id})")
        check(len(generated.authentication.symmetric_key.primary_key) == 44
              and len(generated.authentication.symmetric_key.secondary_key) == 44,
              "the hub generated two 32-byte keys")
        check(bool(generated.etag) and bool(generated.generation_id), "the module has an etag and a generationId")

        primary = base64.b64encode(b"p" * 32).decode()
        secondary = base64.b64encode(b"s" * 32).decode()
        given = registry.create_module_with_sas(HOST_DEVICE, "pyModB", "pyManager", primary, secondary)
        check(given.authentication.symmetric_key.primary_key == primary
              and given.authentication.symmetric_key.secondary_key == secondary, "caller-given keys are kept")
        check(given.managed_by == "pyManager", f"managedBy is kept ({given.managed_by})")

        expect_http_error(lambda: registry.create_module_with_sas(HOST_DEVICE, "pyModA", None, None, None),
                          409, "ModuleAlreadyExistsOnDevice", "creating an existing module")
        expect_http_error(lambda: registry.create_module_with_sas("pyNoSuchDevice", "m", None, None, None),
                          404, "DeviceNotFound", "a module on an unknown device")

        fetched = registry.get_module(HOST_DEVICE, "pyModA")
        check(fetched.etag == generated.etag, "get_module returns the same etag")
        check(fetched.authentication.symmetric_key.primary_key == generated.authentication.symmetric_key.primary_key,
              "get_module returns the same keys")
        check(fetched.connection_state == "Disconnected", f"a fresh module is Disconnected ({fetched.connection_state})")
        listed = sorted(m.module_id for m in registry.get_modules(HOST_DEVICE))
        check(listed == ["pyModA", "pyModB"], f"get_modules lists both modules ({listed})")

        registry.delete_module(HOST_DEVICE, "pyModB")
        expect_http_error(lambda: registry.get_module(HOST_DEVICE, "pyModB"), 404, "ModuleNotFound",
                          "get_module after delete_module")
        listed = [m.module_id for m in registry.get_modules(HOST_DEVICE)]
        check(listed == ["pyModA"], f"get_modules after the delete ({listed})")
        expect_http_error(lambda: registry.delete_module(HOST_DEVICE, "pyModB"), 404, "ModuleNotFound",
                          "deleting a module twice")


def module_twins(registry):
    with flow("python modules: get_module_twin and update_module_twin with etags"):
        twin = registry.get_module_twin(HOST_DEVICE, "pyModA")
        check(twin.module_id == "pyModA" and twin.device_id == HOST_DEVICE,
              f"the module twin names its device and module ({twin.device_id}/{twin.module_id})")
        check(twin.properties.desired.get("$version") == 1 and twin.properties.reported.get("$version") == 1,
              "a fresh module twin has desired and reported $version 1")
        patch = Twin(tags={"role": "sensor"}, properties=TwinProperties(desired={"rate": 5}))
        updated = registry.update_module_twin(HOST_DEVICE, "pyModA", patch, twin.etag)
        check(updated.tags == {"role": "sensor"}, f"update_module_twin applies the tags ({updated.tags})")
        check(updated.properties.desired.get("rate") == 5, "update_module_twin applies the desired property")
        check(updated.properties.desired.get("$version") == 2, "desired $version incremented")
        check(updated.etag != twin.etag, "the module twin etag changed")
        expect_http_error(
            lambda: registry.update_module_twin(HOST_DEVICE, "pyModA", Twin(tags={"stale": True}), twin.etag),
            412, "PreconditionFailed", "a stale module twin etag",
        )
        device_twin = registry.get_twin(HOST_DEVICE)
        check(not (device_twin.tags or {}).get("role"), "the device twin is not touched by a module twin patch")


def module_client(registry, ready, ca_pem):
    hostname = parse_connection_string(ready["service_connection_string"])["HostName"]
    with flow("python modules: IoTHubModuleClient connects with its connection string, reads and patches its twin"):
        key = registry.get_module(HOST_DEVICE, "pyModA").authentication.symmetric_key.primary_key
        client = IoTHubModuleClient.create_from_connection_string(
            module_connection_string(hostname, HOST_DEVICE, "pyModA", key), server_verification_cert=ca_pem
        )
        patches = queue.Queue()
        client.on_twin_desired_properties_patch_received = patches.put
        client.connect()
        try:
            check(client.connected, "the module client connects")
            check(registry.get_module(HOST_DEVICE, "pyModA").connection_state == "Connected",
                  "the service sees the module connected")
            check(registry.get_device(HOST_DEVICE).connection_state == "Disconnected",
                  "the parent device itself stays Disconnected")
            twin = client.get_twin()
            check(twin["desired"].get("rate") == 5, f"the module reads its own desired properties ({twin['desired']})")
            client.patch_twin_reported_properties({"status": "running"})
            service_view = registry.get_module_twin(HOST_DEVICE, "pyModA")
            check(service_view.properties.reported.get("status") == "running", "the service reads the module's report")
            check(not registry.get_twin(HOST_DEVICE).properties.reported.get("status"),
                  "the report did not land on the device twin")
            registry.update_module_twin(HOST_DEVICE, "pyModA", Twin(properties=TwinProperties(desired={"rate": 10})), "*")
            patch = next_item(patches, "the module receives the desired patch")
            check(patch.get("rate") == 10 and patch.get("$version") == 3, f"desired patch body and $version ({patch})")
        finally:
            client.shutdown()
        wait_until(lambda: registry.get_module(HOST_DEVICE, "pyModA").connection_state == "Disconnected",
                   "the service sees the module disconnected")

        bad = base64.b64encode(b"\x01" * 32).decode()
        forged = IoTHubModuleClient.create_from_connection_string(
            module_connection_string(hostname, HOST_DEVICE, "pyModA", bad), server_verification_cert=ca_pem
        )
        try:
            forged.connect()
            check(False, "a module client with a wrong key is refused")
        except Exception as e:  # the SDK raises CredentialError (CONNACK 5)
            check(type(e).__name__ == "CredentialError", f"a wrong module key is refused with CredentialError ({type(e).__name__})")
        finally:
            forged.shutdown()


def module_queries(registry):
    with flow("python modules: SELECT * FROM devices.modules"):
        registry.create_module_with_sas(HOST_DEVICE, "pyModC", None, None, None)
        items, _ = run_query(registry, "SELECT * FROM devices.modules")
        mine = sorted((t.device_id, t.module_id) for t in items if t.device_id == HOST_DEVICE)
        check(mine == [(HOST_DEVICE, "pyModA"), (HOST_DEVICE, "pyModC")], f"all module twins are listed ({mine})")
        items, _ = run_query(registry, "SELECT * FROM devices.modules WHERE properties.reported.status = 'running'")
        # (other scripts' modules share this hub: look at this device's only)
        check([t.module_id for t in items if t.device_id == HOST_DEVICE] == ["pyModA"],
              "a filter on reported properties selects the running module")
        items, _ = run_query(registry, f"SELECT * FROM devices.modules WHERE deviceId = '{HOST_DEVICE}' AND moduleId = 'pyModC'")
        check([t.module_id for t in items] == ["pyModC"], "deviceId and moduleId filter module twins")
        items, _ = run_query(registry, "SELECT * FROM devices")
        check(all(getattr(t, "module_id", None) in (None, "") for t in items), "a devices query lists no module twins")

    with flow("python modules: deleting a device deletes its modules"):
        registry.create_device_with_sas(CASCADE_DEVICE, None, None, "enabled")
        registry.create_module_with_sas(CASCADE_DEVICE, "pyModGone", None, None, None)
        registry.delete_device(CASCADE_DEVICE)
        try:
            registry.get_module(CASCADE_DEVICE, "pyModGone")
            check(False, "the module of a deleted device is gone")
        except HttpOperationError as e:
            check(e.response.status_code == 404, f"the module of a deleted device is gone ({e.response.status_code})")
        items, _ = run_query(registry, "SELECT * FROM devices.modules")
        check(all(t.device_id != CASCADE_DEVICE for t in items), "its module twin is no longer queried")
        registry.create_device_with_sas(CASCADE_DEVICE, None, None, "enabled")
        check(registry.get_modules(CASCADE_DEVICE) == [], "a device re-created with the same id has no modules")


def edge(registry):
    with flow("python edge: an IoT Edge device gets a deviceScope, a child device takes it as its parent"):
        parent = registry.create_device_with_sas(EDGE_DEVICE, None, None, "enabled", iot_edge=True)
        check(parent.capabilities.iot_edge is True, "capabilities.iotEdge is true")
        expected = f"ms-azure-iot-edge://{EDGE_DEVICE}-{parent.generation_id}"
        check(parent.device_scope == expected, f"deviceScope is {expected} ({parent.device_scope})")
        check(re.fullmatch(r"ms-azure-iot-edge://pyEdge-\d+", parent.device_scope or "") is not None,
              "deviceScope has the real hub's form")
        check(registry.get_device(EDGE_DEVICE).device_scope == expected, "get_device returns the same deviceScope")

        child = registry.create_device_with_sas(CHILD_DEVICE, None, None, "enabled", device_scope=parent.device_scope)
        check(child.capabilities.iot_edge is False, "the child is a leaf device")
        check(child.device_scope == parent.device_scope, f"the child keeps its parent's scope ({child.device_scope})")
        check(child.parent_scopes == [parent.device_scope], f"the child's parentScopes names the parent ({child.parent_scopes})")
        fetched = registry.get_device(CHILD_DEVICE)
        check(fetched.device_scope == parent.device_scope and fetched.parent_scopes == [parent.device_scope],
              "get_device returns the child's scopes")
        twin = registry.get_twin(CHILD_DEVICE)
        check(twin.device_scope == parent.device_scope, f"the child's twin shows deviceScope ({twin.device_scope})")
        items, _ = run_query(registry, "SELECT * FROM devices WHERE capabilities.iotEdge = true")
        edge_ids = [t.device_id for t in items]
        check(EDGE_DEVICE in edge_ids and CHILD_DEVICE not in edge_ids,
              f"a query on capabilities.iotEdge finds the Edge device, not the child ({edge_ids})")
        items, _ = run_query(registry, f"SELECT * FROM devices WHERE ARRAY_CONTAINS(parentScopes, '{parent.device_scope}')")
        check([t.device_id for t in items] == [CHILD_DEVICE],
              f"ARRAY_CONTAINS(parentScopes, scope) lists the children (how the Azure CLI finds them) ({[t.device_id for t in items]})")
        system = sorted(m.module_id for m in registry.get_modules(EDGE_DEVICE))
        check(system == ["$edgeAgent", "$edgeHub"], f"the Edge device has the system modules $edgeAgent and $edgeHub ({system})")

        registry.create_device_with_sas("pyLeafParent", None, None, "enabled")
        leaf_scope = registry.get_device("pyLeafParent").device_scope
        bogus = leaf_scope or "ms-azure-iot-edge://pyLeafParent-1"
        expect_http_error(
            lambda: registry.create_device_with_sas("pyOrphan", None, None, "enabled", device_scope=bogus),
            400, "InvalidDeviceScope", "a scope that names no Edge device",
        )


def main():
    ready = load_ready(sys.argv[1])
    groups = sys.argv[2:] or ["modules"]
    ca_pem = open(ready["ca_file"]).read()
    registry = IoTHubRegistryManager.from_connection_string(ready["service_connection_string"])
    for group in groups:
        if group == "modules":
            module_identities(registry)
            module_twins(registry)
            module_client(registry, ready, ca_pem)
            module_queries(registry)
        elif group == "edge":
            edge(registry)
        else:
            check(False, f"unknown group {group}")
    print(f"python modules ({', '.join(groups)}): all flows passed")


if __name__ == "__main__":
    main()
