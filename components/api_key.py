"""The endpoint's API key: configured (a Pulumi secret) or generated once and kept."""

from __future__ import annotations

import pulumi
import pulumi_random as random
from pydantic import SecretStr

KEY_PREFIX = "sk-localai-"


def endpoint_api_key(
    name: str,
    configured: SecretStr | None,
    parent: pulumi.Resource,
    aliases: list[pulumi.Alias] | None = None,
) -> pulumi.Output[str]:
    """A secret Output holding the key.

    Generated keys are letters and digits only, so the value is a plain word in
    ``pulumi stack output --shell`` (``export $(...)`` splits on whitespace and keeps
    quote characters). ``aliases`` carry the generated key across a move between the
    single host and the fleet (the same key keeps working for the app).
    """
    if configured is not None:
        return pulumi.Output.secret(configured.get_secret_value())
    password = random.RandomPassword(
        f"{name}-api-key",
        length=40,
        special=False,
        opts=pulumi.ResourceOptions(parent=parent, aliases=aliases),
    )
    return pulumi.Output.secret(pulumi.Output.concat(KEY_PREFIX, password.result))
