"""An asyncua OPC UA client for the `opcua-server` sink's integration tests (asyncua is a
peer nobody on this team wrote; only this driver script is ours).

Usage: opcua_client.py URL OPS_JSON [--policy P --mode M --cert C --key K --app-uri U]
[--user U --password P] [--trusted DIR (server certificates this client trusts)]

Runs the operations of OPS_JSON (a list) in one session, in order, and prints one line
`RESULT <json list>` with one result per operation. A failed connect prints
`CONNECT_FAILED <status name or message>`. Operations:

  {"op": "namespace", "uri": U}                     -> index
  {"op": "browse", "root": NODE, "depth": N}        -> [{node, name, class, type, parent, ref}]
  {"op": "read", "nodes": [NODE]}                   -> [{value, status, source, server, data_type}]
                                                       or {error} when the whole call failed
  {"op": "read_generated", "ns": N, "count": C, "length": L}   -> like read, C made-up ids
  {"op": "subscribe", "nodes": [NODE], "seconds": S, "sampling": MS, "queue": Q}
                                                    -> {NODE: [values]}
  {"op": "write", "node": NODE, "value": V, "type": VariantType name}  -> status name
  {"op": "call", "object": NODE, "method": NODE, "args": [[V, type]]}  -> {status, outputs}
  {"op": "history_raw", "node": NODE, "start": T, "end": T, "max": N}
                                                    -> {status, values: [[source, value, status]]}
  {"op": "history_processed", "node": NODE, "start": T, "end": T, "interval_ms": MS,
   "aggregate": "Average"|"Minimum"|"Maximum"|"Count"|"TimeAverage"}
                                                    -> {status, values: [[source, value, status]]}
  (T: Unix milliseconds or ISO 8601)
  {"op": "events_start", "source": NODE, "type": NODE, "where": bool, "name": N} -> subscribed
                                                       (one subscription per name, default "")
  {"op": "sleep", "seconds": S}                     -> null
  {"op": "events_collect", "name": N}               -> [{type, source, message, severity, time, fields}]
  {"op": "condition_refresh"}                       -> status name (ConditionRefresh on ConditionType
                                                       for the events subscription)
  {"op": "acknowledge", "condition": NODE, "comment": C}
                                                    -> status name (Acknowledge, i=9111, on the condition
                                                       with the EventId of its last event received)
  {"op": "http", "url": URL}                        -> HTTP status (a test's fake device)
  {"op": "transfer", "nodes": [NODE], "before": S, "seconds": S}
                                                    -> {transfer: [status], before: N, after: [values]}
                                                       (a subscription of this session, after S s taken
                                                       over by a second session: the values its own
                                                       Publish requests get)
"""

import asyncio
import datetime
import json
import sys
import time
import urllib.request
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

AGGREGATES = {
    "Average": ua.ObjectIds.AggregateFunction_Average,
    "Minimum": ua.ObjectIds.AggregateFunction_Minimum,
    "Maximum": ua.ObjectIds.AggregateFunction_Maximum,
    "Count": ua.ObjectIds.AggregateFunction_Count,
    "TimeAverage": ua.ObjectIds.AggregateFunction_TimeAverage,
}


def plain(v):
    """A value as JSON."""
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, ua.LocalizedText):
        return v.Text
    if isinstance(v, ua.NodeId):
        return v.to_string()
    if isinstance(v, ua.StatusCode):
        return v.name
    if isinstance(v, bytes):
        return v.hex()
    if hasattr(v, "__dataclass_fields__"):
        return {k: plain(getattr(v, k)) for k in v.__dataclass_fields__}
    return str(v)


def when(v):
    """A time given as Unix milliseconds or ISO 8601."""
    if isinstance(v, (int, float)):
        return datetime.datetime.fromtimestamp(v / 1000, datetime.timezone.utc)
    return datetime.datetime.fromisoformat(v)


def status_name(code):
    try:
        return ua.StatusCode(code).name
    except Exception:
        return str(code)


def dv_json(dv):
    return {
        "value": plain(dv.Value.Value) if dv.Value is not None else None,
        "status": dv.StatusCode.name if dv.StatusCode is not None else "Good",
        "source": plain(dv.SourceTimestamp),
        "server": plain(dv.ServerTimestamp),
        "variant_type": dv.Value.VariantType.name if dv.Value is not None else None,
    }


class Changes:
    def __init__(self):
        self.values = {}

    def datachange_notification(self, node, val, data):
        self.values.setdefault(node.nodeid.to_string(), []).append(plain(val))


class Events:
    def __init__(self):
        self.events = []
        # ConditionId -> the raw EventId of the condition's last event (Acknowledge names it).
        self.last_event_id = {}

    def event_notification(self, event):
        fields = event.get_event_props_as_fields_dict()
        self.events.append({k: plain(v.Value) for k, v in fields.items()})
        condition = fields.get("NodeId")
        if condition is not None and condition.Value is not None and "EventId" in fields:
            self.last_event_id[condition.Value.to_string()] = fields["EventId"].Value


async def browse(client, root, depth):
    out = []
    seen = set()

    async def walk(node, level):
        if level > depth:
            return
        refs = await node.get_references(refs=ua.ObjectIds.HierarchicalReferences, direction=ua.BrowseDirection.Forward)
        for r in refs:
            target = r.NodeId.to_string()
            out.append({
                "parent": node.nodeid.to_string(),
                "node": target,
                "name": r.BrowseName.Name,
                "name_ns": r.BrowseName.NamespaceIndex,
                "class": r.NodeClass.name,
                "type": r.TypeDefinition.to_string(),
                "ref": r.ReferenceTypeId.to_string(),
            })
            # HasNotifier (i=48) repeats the tree for events: not walked twice.
            if r.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasNotifier):
                continue
            if target not in seen and r.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable, ua.NodeClass.ObjectType):
                seen.add(target)
                await walk(client.get_node(r.NodeId), level + 1)

    await walk(client.get_node(root), 1)
    return out


async def history(client, node, details, max_values=0):
    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = details
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    params.ReleaseContinuationPoints = False
    rv = ua.HistoryReadValueId()
    rv.NodeId = ua.NodeId.from_string(node)
    params.NodesToRead.append(rv)
    values = []
    while True:
        result = (await client.uaclient.history_read(params))[0]
        if result.HistoryData is not None:
            for dv in result.HistoryData.DataValues:
                values.append([plain(dv.SourceTimestamp), plain(dv.Value.Value) if dv.Value else None,
                               dv.StatusCode.name if dv.StatusCode else "Good"])
        if not result.ContinuationPoint or not result.StatusCode.is_good():
            return {"status": result.StatusCode.name, "values": values}
        rv.ContinuationPoint = result.ContinuationPoint


async def run(client, ops):
    results = []
    # Event subscriptions by name; the last one created is the one ConditionRefresh names.
    received = {}
    events = None
    events_sub = None
    for op in ops:
        kind = op["op"]
        if kind == "namespace":
            results.append(await client.get_namespace_index(op["uri"]))
        elif kind == "browse":
            results.append(await browse(client, op["root"], op.get("depth", 8)))
        elif kind in ("read", "read_generated"):
            if kind == "read_generated":
                # Many long node ids, made here: they would not fit on a command line.
                op = {"nodes": [f"ns={op['ns']};s={i:0>{op['length']}}" for i in range(op["count"])]}
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            for n in op["nodes"]:
                rv = ua.ReadValueId()
                rv.NodeId = ua.NodeId.from_string(n)
                rv.AttributeId = ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            try:
                out = [dv_json(dv) for dv in await client.uaclient.read(params)]
            except ua.UaStatusCodeError as e:
                results.append({"error": status_name(e.code)})
                continue
            except Exception as e:  # noqa: BLE001 - e.g. the server closed the connection
                results.append({"error": type(e).__name__ + ": " + str(e)})
                continue
            for n, item in zip(op["nodes"], out):
                try:
                    item["data_type"] = (await client.get_node(n).read_data_type()).to_string()
                except Exception:
                    pass
            results.append(out)
        elif kind == "subscribe":
            handler = Changes()
            sub = await client.create_subscription(
                ua.CreateSubscriptionParameters(RequestedPublishingInterval=op.get("sampling", 100)), handler)
            await sub.subscribe_data_change(
                [client.get_node(n) for n in op["nodes"]],
                queuesize=op.get("queue", 1),
                sampling_interval=op.get("sampling", 100))
            await asyncio.sleep(op["seconds"])
            await sub.delete()
            results.append(handler.values)
        elif kind == "transfer":
            handler = Changes()
            sub = await client.create_subscription(
                ua.CreateSubscriptionParameters(RequestedPublishingInterval=200), handler)
            await sub.subscribe_data_change(
                [client.get_node(n) for n in op["nodes"]], queuesize=1, sampling_interval=100)
            await asyncio.sleep(op.get("before", 1))
            # The same user and security: only they may take a subscription over.
            other = await configured(client.server_url.geturl(), OPTS)
            await other.connect()
            try:
                params = ua.TransferSubscriptionsParameters()
                params.SubscriptionIds = [sub.subscription_id]
                params.SendInitialValues = True
                transferred = await other.uaclient.transfer_subscriptions(params)
                after, acks = [], []
                deadline = time.monotonic() + op["seconds"]
                while time.monotonic() < deadline:
                    response = (await other.uaclient.publish(acks)).Parameters
                    message = response.NotificationMessage
                    # A keep-alive carries no data and is not acknowledged.
                    notifications = message.NotificationData or []
                    acks = [ua.SubscriptionAcknowledgement(
                        SubscriptionId=response.SubscriptionId,
                        SequenceNumber=message.SequenceNumber)] if notifications else []
                    for data in notifications:
                        if isinstance(data, ua.DataChangeNotification):
                            after.extend(plain(m.Value.Value.Value) for m in data.MonitoredItems)
                results.append({
                    "transfer": [status_name(t.StatusCode.value) for t in transferred],
                    "before": sum(len(v) for v in handler.values.values()),
                    "after": after,
                })
            finally:
                await other.disconnect()
        elif kind == "write":
            node = client.get_node(op["node"])
            variant = ua.Variant(op["value"], getattr(ua.VariantType, op["type"]))
            try:
                await node.write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))
                results.append("Good")
            except ua.UaStatusCodeError as e:
                results.append(status_name(e.code))
        elif kind == "call":
            args = [ua.Variant(v, getattr(ua.VariantType, t)) for v, t in op.get("args", [])]
            request = ua.CallMethodRequest()
            request.ObjectId = ua.NodeId.from_string(op["object"])
            request.MethodId = ua.NodeId.from_string(op["method"])
            request.InputArguments = args
            result = (await client.uaclient.call([request]))[0]
            results.append({"status": result.StatusCode.name,
                            "outputs": [plain(v.Value) for v in (result.OutputArguments or [])]})
        elif kind == "history_raw":
            details = ua.ReadRawModifiedDetails()
            details.IsReadModified = False
            details.StartTime = when(op["start"])
            details.EndTime = when(op["end"])
            details.NumValuesPerNode = op.get("max", 0)
            details.ReturnBounds = False
            results.append(await history(client, op["node"], details))
        elif kind == "history_processed":
            details = ua.ReadProcessedDetails()
            details.StartTime = when(op["start"])
            details.EndTime = when(op["end"])
            details.ProcessingInterval = float(op["interval_ms"])
            details.AggregateType = [ua.NodeId(AGGREGATES[op["aggregate"]])]
            results.append(await history(client, op["node"], details))
        elif kind == "events_start":
            events = received.setdefault(op.get("name", ""), Events())
            sub = await client.create_subscription(100, events)
            events_sub = sub
            evtype = client.get_node(op["type"]) if "type" in op else ua.ObjectIds.BaseEventType
            # Without asyncua's where clause (EventType InList [...]): async-opcua 0.19 does
            # not compare NodeIds in InList, so that filter matches nothing; the test filters.
            await sub.subscribe_events(client.get_node(op.get("source", "i=2253")), evtype, queuesize=100,
                                       where_clause_generation=op.get("where", True))
            results.append("subscribed")
        elif kind == "condition_refresh":
            try:
                await client.get_node(ua.ObjectIds.ConditionType).call_method(
                    ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                    ua.Variant(events_sub.subscription_id, ua.VariantType.UInt32))
                results.append("Good")
            except ua.UaStatusCodeError as e:
                results.append(status_name(e.code))
        elif kind == "acknowledge":
            event_id = events.last_event_id.get(op["condition"])
            if event_id is None:
                results.append("no event of the condition received")
                continue
            try:
                await client.get_node(op["condition"]).call_method(
                    ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
                    ua.Variant(event_id, ua.VariantType.ByteString),
                    ua.Variant(ua.LocalizedText(op.get("comment", "")), ua.VariantType.LocalizedText))
                results.append("Good")
            except ua.UaStatusCodeError as e:
                results.append(status_name(e.code))
        elif kind == "http":
            with urllib.request.urlopen(op["url"], timeout=10) as r:
                results.append(r.status)
        elif kind == "sleep":
            await asyncio.sleep(op["seconds"])
            results.append(None)
        elif kind == "events_collect":
            results.append(list(received[op.get("name", "")].events))
        else:
            raise ValueError(f"unknown op {kind}")
    return results


# The command line's options, for a second session made like the first.
OPTS = {}


async def configured(url, opts):
    """A client with the security, trust and user of `opts`, not yet connected."""
    client = Client(url, timeout=30)
    if "--app-uri" in opts:
        client.application_uri = opts["--app-uri"]
    if "--policy" in opts:
        await client.set_security_string(
            f"{opts['--policy']},{opts['--mode']},{opts['--cert']},{opts['--key']}")
    if "--trusted" in opts:
        # The client checks the server's certificate against its own trust list.
        store = TrustStore([Path(opts["--trusted"])], [])
        await store.load()
        client.certificate_validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_SERVER, store)
    if "--user" in opts:
        client.set_user(opts["--user"])
        client.set_password(opts["--password"])
    return client


async def main():
    url = sys.argv[1]
    ops = json.loads(sys.argv[2])
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    OPTS.update(opts)
    client = await configured(url, opts)
    try:
        await client.connect()
    except ua.UaStatusCodeError as e:
        print("CONNECT_FAILED " + status_name(e.code), flush=True)
        return
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print("CONNECT_FAILED " + type(e).__name__ + ": " + str(e).replace("\n", " "), flush=True)
        return
    try:
        results = await run(client, ops)
        print("RESULT " + json.dumps(results), flush=True)
    finally:
        await client.disconnect()


asyncio.run(main())
