"""One OPC UA client session of the opcua-server benchmark (asyncua, a peer we did not
write; only this driver is ours).

Usage: bench_client.py URL NS FIRST COUNT SECONDS [POLICY MODE CERT KEY APP_URI]
Subscribes to the variables `ns=NS;s=bench/plant/line/block-B/vNNN` of tags FIRST ..
FIRST+COUNT-1 (100 per block) with 1 s sampling and publishing, prints `SUBSCRIBED` once
the items exist, counts the data changes it receives for SECONDS, then prints `COUNT n`.
"""

import asyncio
import os
import sys

from asyncua import Client, ua


class Counter:
    def __init__(self):
        self.n = 0

    def datachange_notification(self, node, val, data):
        self.n += 1


async def main():
    url, ns, first, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    # asyncua probes the server's state with a Read every watchdog interval (1 s by default);
    # BENCH_CLIENT_WATCHDOG (seconds) changes it, to tell that traffic apart.
    watchdog = float(os.environ.get("BENCH_CLIENT_WATCHDOG", "1.0"))
    client = Client(url, timeout=60, watchdog_intervall=watchdog)
    if len(sys.argv) > 6:
        policy, mode, cert, key, app_uri = sys.argv[6:11]
        client.application_uri = app_uri
        await client.set_security_string(f"{policy},{mode},{cert},{key}")
    await client.connect()
    try:
        counter = Counter()
        sub = await client.create_subscription(
            ua.CreateSubscriptionParameters(RequestedPublishingInterval=1000, RequestedMaxKeepAliveCount=10), counter)
        nodes = [client.get_node(f"ns={ns};s=bench/plant/line/block-{i // 100}/v{i % 100:03}") for i in range(first, first + count)]
        for start in range(0, len(nodes), 500):
            await sub.subscribe_data_change(nodes[start:start + 500], queuesize=1, sampling_interval=1000)
        print("SUBSCRIBED", flush=True)
        counter.n = 0
        # Start counting when told: the benchmark measures a window after every session is up.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        counter.n = 0
        await asyncio.sleep(seconds)
        print(f"COUNT {counter.n}", flush=True)
        await sub.delete()
    finally:
        await client.disconnect()


asyncio.run(main())
