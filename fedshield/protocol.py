"""Keys of the records exchanged between the ServerApp and the ClientApp (one vocabulary)."""

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
INTEGRITY = "integrity"

# ConfigRecord keys sent by the server.
SERVER_ROUND = "server-round"
SCENARIO = "scenario"
GLOBAL_DIGEST = "global-digest"
BROADCAST_SIGNATURE = "broadcast-signature"

# MetricRecord keys sent by clients.
NUM_EXAMPLES = "num-examples"
PARTITION_ID = "partition-id"
TRAIN_LOSS = "train-loss"
LOCAL_STEPS = "local-steps"
SAMPLING_RATE = "sampling-rate"
REFUSED = "refused"

# Integrity ConfigRecord keys sent by clients.
NODE_ID = "node-id"
BASE_DIGEST = "base-digest"
UPDATE_DIGEST = "update-digest"
SIGNATURE = "signature"
