"""Weight integrity: digests, Ed25519 signatures, the reply gate, the run ledger, watermarks.

Pure functions and explicit state; the Flower ServerApp/ClientApp call them. The watermark
module imports TensorFlow and is therefore not re-exported here: import
``server.integrity.watermark`` where it is needed.
"""

from server.integrity.checkpoint import load_checkpoint, save_checkpoint
from server.integrity.config import IntegrityConfig, WatermarkConfig, parse_integrity_config
from server.integrity.detection import detection_scores
from server.integrity.digest import digest_arrays
from server.integrity.gate import (
    GateResult,
    GateState,
    SignedReply,
    Verdict,
    run_gate,
    seal_reply,
)
from server.integrity.integrity_log import IntegrityLog, round_summary
from server.integrity.keys import (
    client_key,
    client_public_keys,
    server_key,
    server_public_key,
)
from server.integrity.ledger import RunLedger, VerifyReport, verify_run
from server.integrity.signing import (
    KeyPair,
    PublicKey,
    check_broadcast,
    load_public,
    sign_broadcast,
    sign_reply,
    verify_broadcast,
    verify_reply,
)

__all__ = [
    "GateResult",
    "GateState",
    "IntegrityConfig",
    "IntegrityLog",
    "KeyPair",
    "PublicKey",
    "RunLedger",
    "SignedReply",
    "Verdict",
    "VerifyReport",
    "WatermarkConfig",
    "check_broadcast",
    "client_key",
    "client_public_keys",
    "detection_scores",
    "digest_arrays",
    "load_checkpoint",
    "load_public",
    "parse_integrity_config",
    "round_summary",
    "run_gate",
    "save_checkpoint",
    "seal_reply",
    "server_key",
    "server_public_key",
    "sign_broadcast",
    "sign_reply",
    "verify_broadcast",
    "verify_reply",
    "verify_run",
]
