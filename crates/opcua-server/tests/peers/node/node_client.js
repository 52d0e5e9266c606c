// node-opcua as a second, independent OPC UA client of the opcua-server tests (node-opcua
// is a peer nobody on this team wrote; only this driver is ours). Installed by
// scripts/install-opcua-peers; run with NODE_PATH=<that dir>/node_modules.
//
// Usage: node node_client.js URL OPS_JSON
// Runs the operations (a subset of tests/peers/opcua_client.py's) in one anonymous session
// without security and prints `RESULT <json list>`:
//   {"op": "namespace", "uri": U}                -> index
//   {"op": "browse", "node": NODE}               -> [{node, name, class, type}]
//   {"op": "read", "nodes": [NODE]}              -> [{value, status, data_type, source, server}]
//   {"op": "subscribe", "nodes": [NODE], "seconds": S} -> {NODE: [values]}
//   {"op": "events", "sources": [NODE], "seconds": S}
//                                                -> {NODE: [{EventId, EventType, SourceName, Message}]}
//                                                   (one subscription, an event item per source)
"use strict";

const {
  OPCUAClient,
  MessageSecurityMode,
  SecurityPolicy,
  AttributeIds,
  TimestampsToReturn,
  ClientSubscription,
  ClientMonitoredItem,
  BrowseDirection,
  NodeClass,
  DataType,
  constructEventFilter,
} = require("node-opcua-client");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function plain(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && typeof v[1] === "number" && v.high === undefined) {
    // node-opcua gives 64-bit integers as [high, low]
    return v[0] * 4294967296 + v[1];
  }
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v, plain);
  if (typeof v === "object" && v.text !== undefined) return v.text;
  return typeof v === "object" ? String(v) : v;
}

async function run(session, ops) {
  const results = [];
  for (const op of ops) {
    if (op.op === "namespace") {
      const ns = await session.readNamespaceArray();
      results.push(ns.indexOf(op.uri));
    } else if (op.op === "browse") {
      const r = await session.browse({
        nodeId: op.node,
        browseDirection: BrowseDirection.Forward,
        referenceTypeId: "HierarchicalReferences",
        includeSubtypes: true,
        resultMask: 63,
      });
      results.push(
        (r.references || []).map((x) => ({
          node: x.nodeId.toString(),
          name: x.browseName.name,
          class: NodeClass[x.nodeClass],
          type: x.typeDefinition.toString(),
        })),
      );
    } else if (op.op === "read") {
      const dvs = await session.read(
        op.nodes.map((n) => ({ nodeId: n, attributeId: AttributeIds.Value })),
        0,
      );
      results.push(
        dvs.map((dv) => ({
          value: plain(dv.value.value),
          status: dv.statusCode.name,
          data_type: DataType[dv.value.dataType],
          source: dv.sourceTimestamp ? dv.sourceTimestamp.toISOString() : null,
          server: dv.serverTimestamp ? dv.serverTimestamp.toISOString() : null,
        })),
      );
    } else if (op.op === "subscribe") {
      const sub = ClientSubscription.create(session, {
        requestedPublishingInterval: 100,
        requestedMaxKeepAliveCount: 10,
        requestedLifetimeCount: 100,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      });
      const values = {};
      for (const n of op.nodes) {
        const item = ClientMonitoredItem.create(
          sub,
          { nodeId: n, attributeId: AttributeIds.Value },
          { samplingInterval: 100, discardOldest: true, queueSize: 10 },
          TimestampsToReturn.Both,
        );
        item.on("changed", (dv) => (values[n] = values[n] || []).push(plain(dv.value.value)));
      }
      await sleep(op.seconds * 1000);
      await sub.terminate();
      results.push(values);
    } else if (op.op === "events") {
      const sub = ClientSubscription.create(session, {
        requestedPublishingInterval: 100,
        requestedMaxKeepAliveCount: 10,
        requestedLifetimeCount: 100,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      });
      const fields = ["EventId", "EventType", "SourceName", "Message"];
      const events = {};
      for (const n of op.sources) {
        events[n] = [];
        const item = ClientMonitoredItem.create(
          sub,
          { nodeId: n, attributeId: AttributeIds.EventNotifier },
          { queueSize: 100, filter: constructEventFilter(fields) },
          TimestampsToReturn.Both,
        );
        item.on("changed", (values) => {
          const e = {};
          fields.forEach((f, i) => {
            const v = values[i].value;
            e[f] = f === "EventId" && v ? Buffer.from(v).toString("hex") : plain(v);
          });
          events[n].push(e);
        });
      }
      await sleep(op.seconds * 1000);
      await sub.terminate();
      results.push(events);
    } else {
      throw new Error(`unknown op ${op.op}`);
    }
  }
  return results;
}

async function main() {
  const [url, opsJson] = process.argv.slice(2);
  const client = OPCUAClient.create({
    applicationName: "backplane-test-node-opcua",
    endpointMustExist: false,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
  });
  try {
    await client.connect(url);
  } catch (e) {
    console.log("CONNECT_FAILED " + String(e.message).replace(/\n/g, " "));
    return;
  }
  const session = await client.createSession();
  try {
    console.log("RESULT " + JSON.stringify(await run(session, JSON.parse(opsJson))));
  } finally {
    await session.close();
    await client.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
