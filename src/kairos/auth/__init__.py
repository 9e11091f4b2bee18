"""Who may call the API: the admin token, users with passwords and JWTs, API keys, scopes."""

from kairos.auth.accounts import MAX_KEY_LIFETIME_S, USER_NAME_PATTERN, Accounts
from kairos.auth.authenticator import ADMIN_TOKEN_ACTOR, Authenticator, IssuedToken

__all__ = [
    "ADMIN_TOKEN_ACTOR",
    "MAX_KEY_LIFETIME_S",
    "USER_NAME_PATTERN",
    "Accounts",
    "Authenticator",
    "IssuedToken",
]
