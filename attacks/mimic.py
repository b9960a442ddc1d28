"""Mimic (Karimireddy, He & Jaggi 2022): every colluder copies one honest update."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from attacks._maths import tile_rows
from attacks.base import Updates
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.registry import register_attack
from common.errors import ConfigError
from common.registry import Params


class MimicParams(Params):
    """Which honest update to copy: the max-variance one, or a fixed position."""

    choice: Literal["max_variance", "fixed"] = "max_variance"
    index: int = Field(0, ge=0)
    """Position in the round's honest updates when ``choice = "fixed"``."""


def max_variance_row(honest: Updates) -> int:
    """Index of the honest update with the largest |projection| on the top principal direction.

    With ``X`` the centred honest updates and ``G = X X^T = U L U^T``, the projections of the
    rows on the first right singular vector are ``sqrt(l_1) * u_1``, so the argmax of ``|u_1|``
    is found from the small ``(h, h)`` Gram matrix instead of a ``(d, d)`` covariance.
    """
    data = honest.astype(np.float64)
    centred = data - data.mean(axis=0)
    _, vectors = np.linalg.eigh(centred @ centred.T)
    return int(np.argmax(np.abs(vectors[:, -1])))


@register_attack("mimic", MimicParams)
class Mimic(CollusionAttack[MimicParams]):
    r"""Mimic (Karimireddy, He & Jaggi 2022, ICLR): every colluder copies one honest update.

    .. math::

        \tilde u = u_{i^*},\qquad i^* = \arg\max_i |\langle u_i - \mu, v_1\rangle|

    with ``v_1`` the top principal direction of this round's honest updates (``max_variance``),
    or ``i* = index`` (``fixed``; ByzFL's ``Mimic(epsilon)``). Over-representing one client's
    (non-IID) data biases the aggregate without any outlier. The paper's code learns ``v_1``
    online over warm-up rounds and takes the signed argmax; we recompute it each round
    (stateless) and take ``|.|``, since an eigenvector's sign is arbitrary.

    Parameters
    ----------
    choice : {"max_variance", "fixed"}, default "max_variance"
        How the copied update is chosen.
    index : int, default 0
        Position in the round's honest updates when ``choice = "fixed"``.

    Returns
    -------
    Forgery
        ``m`` copies of the chosen honest update; diagnostics ``copied`` (its position).

    References
    ----------
    Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
    Bucketing", ICLR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[0.0, 0.1], [1.0, 0.0], [-5.0, 0.2], [0.5, 0.0]])
    >>> view = RoundView(own=np.zeros((2, 2)), num_clients=6, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.ones(4, dtype=np.int64))
    >>> get_attack("mimic").forge(view).updates
    array([[-5. ,  0.2],
           [-5. ,  0.2]])
    """

    def _forge(self, view: RoundView) -> Forgery:
        honest, _ = view.known_honest()
        if self.params.choice == "max_variance":
            row = max_variance_row(honest)
        elif self.params.index < honest.shape[0]:
            row = self.params.index
        else:
            raise ConfigError(
                f"attack.params.index: got {self.params.index}; must be < the number of honest "
                f"updates in the round ({honest.shape[0]})"
            )
        return Forgery(tile_rows(honest[row], view.num_malicious), {"copied": float(row)})
