# Checked by tests/test_generated.py with mypy --strict: every line marked `# E` must be an
# error (a misspelt literal), every other line must pass.
from latchkey import Client, Token, TokenState

client = Client("keys.example.com", "lkp_x")
client.tokens.create("Workspace 1", "ci", type="personal", scopes=["projects:read"])
client.tokens.create("Workspace 1", "ci", type="personnal")  # E
client.tokens.create("Workspace 1", "ci", scopes=["project:read"])  # E
client.users.create("bob", "a long password", role="superuser")  # E
client.update_token_settings(token_creators="everyone")  # E


def state_of(token: Token) -> TokenState:
    return token.state


def is_live(token: Token) -> bool:
    return token.state == "actvie"  # E


names = [t.name for t in client.tokens.list()]
