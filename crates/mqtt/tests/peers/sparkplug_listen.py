"""Third-party decoding of Backplane's Sparkplug B messages with pysparkplug.

usage: sparkplug_listen.py HOST PORT GROUP
Subscribes to spBv1.0/GROUP/#, prints "ready" once subscribed, then one JSON line per
message decoded by pysparkplug (DDATA with the aliases of the device's DBIRTH) until
standard input closes.
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
import pysparkplug as spb

host, port, group = sys.argv[1], int(sys.argv[2]), sys.argv[3]
births = {}
out_lock = threading.Lock()


def emit(record):
    with out_lock:
        print(json.dumps(record, default=str), flush=True)


def metric_json(m):
    return {
        "name": m.name,
        "alias": m.alias,
        "datatype": int(m.datatype),
        "value": m.value,
        "is_null": m.is_null,
        "is_historical": m.is_historical,
        "timestamp": m.timestamp,
    }


def on_message(_client, _userdata, msg):
    levels = msg.topic.split("/")
    kind = levels[2]
    node = levels[3]
    device = levels[4] if len(levels) > 4 else None
    record = {"topic": msg.topic, "type": kind, "node": node, "device": device}
    try:
        if kind == "NBIRTH":
            p = spb.NBirth.decode(msg.payload)
            births[(node, None)] = p
        elif kind == "DBIRTH":
            p = spb.DBirth.decode(msg.payload)
            births[(node, device)] = p
        elif kind == "DDATA":
            p = spb.DData.decode(msg.payload, birth=births.get((node, device)))
        elif kind == "NDATA":
            p = spb.NData.decode(msg.payload, birth=births.get((node, None)))
        elif kind == "NDEATH":
            p = spb.NDeath.decode(msg.payload)
            record["bd_seq"] = p.bd_seq_metric.value
            record["bd_seq_datatype"] = int(p.bd_seq_metric.datatype)
            emit(record)
            return
        elif kind == "DDEATH":
            p = spb.DDeath.decode(msg.payload)
            record["seq"] = p.seq
            emit(record)
            return
        else:
            return
        record["seq"] = p.seq
        record["timestamp"] = p.timestamp
        record["metrics"] = [metric_json(m) for m in p.metrics]
        if kind == "NBIRTH":
            record["bd_seq"] = next(m.value for m in p.metrics if m.name == "bdSeq")
    except Exception as e:  # report, do not die: the test asserts there are none
        record["error"] = f"{type(e).__name__}: {e}"
    emit(record)


def on_connect(client, _userdata, _flags, _rc):
    client.subscribe(f"spBv1.0/{group}/#", qos=1)


def on_subscribe(*_args):
    emit({"ready": True})


client = mqtt.Client(client_id=f"spb-listen-{group}", clean_session=True)
client.on_connect = on_connect
client.on_message = on_message
client.on_subscribe = on_subscribe
client.connect(host, port)
client.loop_start()
sys.stdin.read()
client.loop_stop()
client.disconnect()
