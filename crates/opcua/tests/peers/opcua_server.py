"""An asyncua OPC UA server for the `opcua` source's integration tests (a peer nobody on
this team wrote; only this set-up script is ours).

Prints `READY <namespace index>` once it accepts connections. Reads commands on stdin:
`stats` prints `STATS {json}` (sessions created, active sessions, largest Read and
CreateMonitoredItems calls seen, refused calls).

Address space (namespace "urn:backplane:test"):
  Types.<BuiltInType>   one variable per built-in type, fixed values
  Arrays.<Type>         arrays
  Counter               UInt32, +1 every 100 ms (source timestamps set)
  Write.Double, Write.Int16   writable (AccessLevel and UserAccessLevel CurrentWrite), 0
  Write.Locked          Double 1.0, read-only: writes are refused (BadUserAccessDenied)
  Status.Uncertain      Double with UncertainLastUsableValue
  Status.Bad            Double with BadSensorFailure
  Struct.Motor          a server-defined structure MotorData {Current: Double, Running: Boolean}
  Struct.Unknown        an ExtensionObject whose type the server does not describe
  Many.NNNNN            --many Double variables
"""

import argparse
import asyncio
import datetime
import json
import sys
import uuid
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.structures104 import new_struct, new_struct_field
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.internal_session import InternalSession

STATS = {"sessions_created": 0, "max_read": 0, "max_create_items": 0, "refused": 0, "reads": 0, "create_calls": 0}


class Users:
    def __init__(self, user, password, x509_der):
        self.user = user
        self.password = password
        self.x509_der = x509_der

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if self.x509_der is not None:
            der = certificate if isinstance(certificate, bytes) else None
            if der is None and certificate is not None:
                from cryptography.hazmat.primitives.serialization import Encoding

                der = certificate.public_bytes(Encoding.DER)
            return User(role=UserRole.User) if der == self.x509_der else None
        if self.user is None:
            return User(role=UserRole.User)
        if username == self.user and password == self.password:
            return User(role=UserRole.User)
        return None


def enforce_limits(per_call, per_read):
    """asyncua advertises operation limits but does not enforce them: refuse larger calls
    the way a strict server does, and record the largest call seen."""
    read = InternalSession.read
    create = InternalSession.create_monitored_items

    async def limited_read(self, params):
        n = len(params.NodesToRead)
        STATS["reads"] += 1
        STATS["max_read"] = max(STATS["max_read"], n)
        if per_read and n > per_read:
            STATS["refused"] += 1
            raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)
        return await read(self, params)

    async def limited_create(self, params):
        n = len(params.ItemsToCreate)
        STATS["create_calls"] += 1
        STATS["max_create_items"] = max(STATS["max_create_items"], n)
        if per_call and n > per_call:
            STATS["refused"] += 1
            raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)
        return await create(self, params)

    InternalSession.read = limited_read
    InternalSession.create_monitored_items = limited_create


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--security", choices=["none", "basic256sha256"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--trusted", help="folder of trusted client certificates")
    p.add_argument("--user", help="NAME:PASSWORD; anonymous login is refused then")
    p.add_argument("--x509-user", help="DER certificate of the only user allowed in (X.509 login)")
    p.add_argument("--limits", help="per_call,per_read,per_subscription,subscriptions")
    p.add_argument("--many", type=int, default=0)
    args = p.parse_args()

    user, password = (args.user.split(":", 1) if args.user else (None, None))
    x509_der = Path(args.x509_user).read_bytes() if args.x509_user else None
    server = Server(user_manager=Users(user, password, x509_der))
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/")
    server.set_server_name("Backplane test peer (asyncua)")
    await server.set_application_uri("urn:backplane:test-peer")
    if x509_der is not None:
        tokens = [ua.X509IdentityToken]
    elif user:
        tokens = [ua.UserNameIdentityToken]
    else:
        tokens = [ua.AnonymousIdentityToken]
    server.set_identity_tokens(tokens)
    if args.security == "basic256sha256":
        server.set_security_policy(
            [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt, ua.SecurityPolicyType.Basic256Sha256_Sign]
        )
        await server.load_certificate(args.cert)
        await server.load_private_key(args.key)
        store = TrustStore([Path(args.trusted)], [])
        await store.load()
        server.set_certificate_validator(
            CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT,
                store,
            )
        )
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])

    idx = await server.register_namespace("urn:backplane:test")
    objects = server.nodes.objects
    folder = await objects.add_folder(ua.NodeId("Test", idx), "Test")

    async def var(name, value, vtype=None, status=None):
        v = ua.Variant(value, vtype) if vtype is not None else ua.Variant(value)
        node = await folder.add_variable(ua.NodeId(name, idx), name, v)
        if status is not None:
            await node.write_value(ua.DataValue(v, StatusCode=ua.StatusCode(status)))
        return node

    V = ua.VariantType
    await var("Types.Boolean", True, V.Boolean)
    await var("Types.SByte", -8, V.SByte)
    await var("Types.Byte", 200, V.Byte)
    await var("Types.Int16", -1234, V.Int16)
    await var("Types.UInt16", 65000, V.UInt16)
    await var("Types.Int32", -70000, V.Int32)
    await var("Types.UInt32", 4000000000, V.UInt32)
    await var("Types.Int64", -5000000000000000, V.Int64)
    await var("Types.UInt64", 18000000000000000000, V.UInt64)
    await var("Types.Float", 1.5, V.Float)
    await var("Types.Double", 3.25, V.Double)
    await var("Types.String", "Kühlraum 3", V.String)
    await var(
        "Types.DateTime", datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc), V.DateTime
    )
    await var("Types.Guid", uuid.UUID("72962b91-fa75-4ae6-8d28-b404dc7daf63"), V.Guid)
    await var("Types.ByteString", b"\x01\x02\xff", V.ByteString)
    await var("Types.LocalizedText", ua.LocalizedText("läuft", "de"), V.LocalizedText)
    await var("Arrays.Int32", [1, -2, 3], V.Int32)
    await var("Arrays.Double", [0.5, 1.5], V.Double)
    await var("Arrays.String", ["a", "b"], V.String)
    await var("Arrays.Boolean", [True, False], V.Boolean)
    await var("Status.Uncertain", 7.5, V.Double, ua.StatusCodes.UncertainLastUsableValue)
    await var("Status.Bad", 0.0, V.Double, ua.StatusCodes.BadSensorFailure)
    counter = await var("Counter", 0, V.UInt32)
    for name, vtype in (("Write.Double", V.Double), ("Write.Int16", V.Int16)):
        await (await var(name, 0, vtype)).set_writable()
    await var("Write.Locked", 1.0, V.Double)

    motor_type, _ = await new_struct(
        server,
        idx,
        "MotorData",
        [new_struct_field("Current", V.Double), new_struct_field("Running", V.Boolean)],
    )
    await server.load_data_type_definitions()
    await folder.add_variable(
        ua.NodeId("Struct.Motor", idx),
        "Motor",
        ua.Variant(ua.MotorData(Current=12.5, Running=True)),
        datatype=motor_type.nodeid,
    )
    unknown = ua.ExtensionObject(TypeId=ua.NodeId(5001, idx), Body=b"\x01\x02\x03")
    await folder.add_variable(
        ua.NodeId("Struct.Unknown", idx),
        "Unknown",
        ua.Variant(unknown, V.ExtensionObject),
        datatype=ua.NodeId(ua.ObjectIds.Structure),
    )

    many = await objects.add_folder(ua.NodeId("Many", idx), "Many")
    for i in range(args.many):
        await many.add_variable(ua.NodeId(f"Many.{i:05}", idx), f"V{i:05}", ua.Variant(float(i), V.Double))

    if args.limits:
        per_call, per_read, per_sub, subs = (int(x) for x in args.limits.split(","))
        limits = {
            ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall: per_call,
            ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead: per_read,
            ua.ObjectIds.Server_ServerCapabilities_MaxMonitoredItemsPerSubscription: per_sub,
            ua.ObjectIds.Server_ServerCapabilities_MaxSubscriptionsPerSession: subs,
        }
        for node_id, value in limits.items():
            await server.get_node(ua.NodeId(node_id)).write_value(ua.Variant(value, V.UInt32))
        enforce_limits(per_call, per_read)

    create_session = server.iserver.create_session

    def counting_create_session(*a, **kw):
        STATS["sessions_created"] += 1
        return create_session(*a, **kw)

    server.iserver.create_session = counting_create_session

    async with server:
        print(f"READY {idx}", flush=True)
        loop = asyncio.get_running_loop()

        async def tick():
            n = 0
            while True:
                await asyncio.sleep(0.1)
                n += 1
                now = datetime.datetime.now(datetime.timezone.utc)
                await counter.write_value(ua.DataValue(ua.Variant(n, V.UInt32), SourceTimestamp=now))

        ticker = asyncio.create_task(tick())
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if line.strip() == "stats":
                stats = dict(STATS, active_sessions=len(server.iserver._external_sessions))
                print("STATS " + json.dumps(stats), flush=True)
        ticker.cancel()


if __name__ == "__main__":
    asyncio.run(main())
