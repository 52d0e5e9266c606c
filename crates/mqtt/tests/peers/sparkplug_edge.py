"""A third-party Sparkplug B edge node (pysparkplug) publishing births, data and death.

usage: sparkplug_edge.py HOST PORT GROUP NODE PRIMARY_HOST
Waits until PRIMARY_HOST's STATE says online, then connects (NBIRTH, DBIRTH of device
`tank-1`), publishes two DDATA updates, waits, and disconnects (NDEATH). Prints "done".
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pysparkplug as spb

host, port, group, node, primary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

online = threading.Event()


def on_state(_client, _userdata, msg):
    try:
        if json.loads(msg.payload).get("online"):
            online.set()
    except ValueError:
        pass


watcher = mqtt.Client(client_id=f"spb-watch-{node}", clean_session=True)
watcher.on_connect = lambda c, *_: c.subscribe(f"spBv1.0/STATE/{primary}", qos=1)
watcher.on_message = on_state
watcher.connect(host, port)
watcher.loop_start()
if not online.wait(20):
    print("primary host never came online", flush=True)
    sys.exit(1)
watcher.loop_stop()
watcher.disconnect()

now = spb.get_current_timestamp
DT = spb.DataType


def metrics(level, running, count):
    return (
        spb.Metric(timestamp=now(), name="Inputs/level", datatype=DT.DOUBLE, value=level),
        spb.Metric(timestamp=now(), name="running", datatype=DT.BOOLEAN, value=running),
        spb.Metric(timestamp=now(), name="count", datatype=DT.INT64, value=count),
    )


edge = spb.EdgeNode(
    group_id=group,
    edge_node_id=node,
    metrics=(spb.Metric(timestamp=now(), name="Properties/site", datatype=DT.STRING, value="dairy"),),
    client=spb.Client(client_id=f"spb-edge-{node}"),
)
edge.register(spb.Device(device_id="tank-1", metrics=metrics(12.5, False, 1)))
edge.connect(host, port=port)
time.sleep(1.0)
edge.update_device("tank-1", metrics(40.25, True, 2))
time.sleep(0.3)
edge.update_device("tank-1", metrics(41.5, True, 3))
time.sleep(1.5)
print("data sent", flush=True)
sys.stdin.read()
edge.disconnect()
time.sleep(0.5)
print("done", flush=True)
