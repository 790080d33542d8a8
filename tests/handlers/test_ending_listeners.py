"""Every button and form of ending and disputes leads somewhere: a listener each, once."""

from __future__ import annotations

from collections import Counter

from handlers.ids import Action, View
from tests.test_manifest_matches_code import registered


def test_the_ending_and_dispute_buttons_and_form_each_have_one_listener() -> None:
    app = registered()

    actions = Counter(app.actions)
    for action in (
        Action.END_CONTRACT,
        Action.ACCEPT_REFUND,
        Action.DISPUTE,
        Action.AGREE_TO_SPLIT,
    ):
        assert actions[action.value] == 1, action
    assert Counter(app.views)[View.DISPUTE.value] == 1
