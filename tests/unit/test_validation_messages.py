"""What a 400 says about the client's input: enough to fix it, never the whole input
back, never a secret, and for anyOf/oneOf what each alternative expected."""

from __future__ import annotations

from actions_server.redaction import DEFAULT, Redactor
from actions_server.validation import MAX_QUOTED, CompiledSchema

SCHEMA = CompiledSchema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 3},
            "amount": {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]},
            "target": {
                "oneOf": [
                    {"type": "object", "required": ["email"]},
                    {
                        "type": "object",
                        "required": ["phone"],
                        "properties": {"phone": {"type": "string"}},
                    },
                ]
            },
            "ssn": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
)


def messages(instance: dict, redactor: Redactor = DEFAULT) -> dict[str, str]:
    return {d.path: d.message for d in SCHEMA.errors(instance, redactor)}


def test_a_long_value_is_quoted_cut_with_its_length() -> None:
    [message] = messages({"name": "x" * 100_000}).values()
    assert message.endswith("… (100000 characters) is longer than 3 characters")
    assert len(message) < MAX_QUOTED + 60


def test_any_of_says_what_each_alternative_expected() -> None:
    assert messages({"amount": "12a"})["/amount"] == (
        '"12a" must match any of 2 alternatives: (1) "12a" is not of type "integer"'
        ' | (2) "12a" does not match "^[0-9]+$"'
    )


def test_one_of_names_the_missing_fields_of_each_alternative() -> None:
    message = messages({"target": {"phone": 5}})["/target"]
    assert message.startswith('{"phone":5} must match exactly one of 2 alternatives:')
    assert "(1) 'email' is required" in message
    assert '(2) at /phone: 5 is not of type "string"' in message


def test_secrets_are_never_quoted_by_path_or_inside_a_value() -> None:
    redactor = Redactor(["password", "ssn"])
    found = messages({"ssn": "123-45-6789", "tags": [{"password": "hunter2"}]}, redactor)
    assert found["/ssn"] == 'the value is not of type "integer"'
    assert found["/tags/0"] == '{"password":"[redacted]"} is not of type "string"'
    assert "hunter2" not in str(found)
    assert "123-45" not in str(found)


def test_the_configured_keys_decide_not_only_the_defaults() -> None:
    assert "123-45-6789" in messages({"ssn": "123-45-6789"})["/ssn"]  # default keys: not secret
    assert "123-45" not in messages({"ssn": "123-45-6789"}, Redactor(["ssn"]))["/ssn"]
