"""The robolearn wire protocol: versioned msgpack envelopes with numpy arrays as raw ZeroMQ
frames, a schema registry checked on both ends, and socket helpers that never block a control
loop on a bad or dead peer.

    >>> import numpy as np, zmq
    >>> from robolearn.protocol import Publisher, Subscriber
    >>> ctx = zmq.Context.instance()
    >>> pub = Publisher(ctx, "tcp://127.0.0.1:*", "wrist_cam")
    >>> sub = Subscriber(ctx, pub.address, types=["camera_frame"])
"""

from robolearn.protocol import messages as messages
from robolearn.protocol.codec import (
    DEFAULT_MAX_BYTES,
    PROTOCOL_VERSION,
    Message,
    decode,
    encode,
    peek_seq,
)
from robolearn.protocol.messages import ARM_COMMANDS
from robolearn.protocol.schema import (
    FREE_ARRAY_DTYPES,
    MAX_DIM,
    WIRE_DTYPES,
    ArraySpec,
    FieldSpec,
    MessageSpec,
    get_spec,
    register,
    registered_types,
)
from robolearn.protocol.security import (
    SocketSecurity,
    apply_security,
    check_bind,
    generate_keypair,
)
from robolearn.protocol.sockets import (
    Publisher,
    Puller,
    Pusher,
    Replier,
    Requester,
    RoutingId,
    Subscriber,
)

__all__ = [
    "ARM_COMMANDS",
    "DEFAULT_MAX_BYTES",
    "FREE_ARRAY_DTYPES",
    "MAX_DIM",
    "PROTOCOL_VERSION",
    "WIRE_DTYPES",
    "ArraySpec",
    "FieldSpec",
    "Message",
    "MessageSpec",
    "Publisher",
    "Puller",
    "Pusher",
    "Replier",
    "Requester",
    "RoutingId",
    "SocketSecurity",
    "Subscriber",
    "apply_security",
    "check_bind",
    "decode",
    "encode",
    "generate_keypair",
    "get_spec",
    "messages",
    "peek_seq",
    "register",
    "registered_types",
]
