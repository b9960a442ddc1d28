"""The ``ClientApp`` of a SecAgg+ run: the same local update, masked by Flower's ``secaggplus_mod``.

Flower's mod runs the client's half of SecAgg+ (key agreement, Shamir shares, masking) and, in
its masking stage, calls this app's ``train`` for the update it masks. It reads the train
message in the legacy ``FitIns`` layout and the reply in the legacy ``FitRes`` layout
(``flwr.common.recorddict_compat``), which is why this app is not :mod:`clients.app`; the
training itself is :func:`clients.app.local_update`, the handshake is :func:`clients.app.query`.
Why the server side needs Flower's legacy workflow: :mod:`server.secure_aggregation`.

The reply's metrics (partition id, local steps, sampling rate, loss) are not masked: they are
what the server needs for sampling and privacy accounting and say nothing about the weights.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    FitRes,
    Scalar,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common import recorddict_compat as compat

from clients.app import _scenario, local_update, query
from common import protocol as P
from common.tf_runtime import configure_tensorflow

app = ClientApp(mods=[secaggplus_mod])
app.query()(query)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train on the local shard; the mod masks the weights before they leave the node."""
    fit = compat.recorddict_to_fitins(message.content, keep_input=True)
    scenario = _scenario(str(fit.config[P.SCENARIO]))
    configure_tensorflow(int(scenario.simulation.num_cpus))
    partition_id = int(context.node_config["partition-id"])
    server_round = int(fit.config[P.SERVER_ROUND])
    base = parameters_to_ndarrays(fit.parameters)
    weights, num_examples, outcome = local_update(scenario, partition_id, server_round, base)
    metrics: dict[str, Scalar] = {
        P.PARTITION_ID: partition_id,
        P.LOCAL_STEPS: outcome.local_steps,
        P.SAMPLING_RATE: outcome.sampling_rate,
    }
    if scenario.dp.reports_train_loss:  # with DP the loss is a side channel (docs/dp.md)
        metrics[P.TRAIN_LOSS] = outcome.mean_loss
    reply = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(weights), num_examples, metrics)
    return Message(content=compat.fitres_to_recorddict(reply, keep_input=False), reply_to=message)
