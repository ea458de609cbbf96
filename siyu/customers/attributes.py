"""Custom fields: the tenant defines them, values are validated against their kind on write."""

import re
from datetime import date
from typing import Any

from django.db import transaction

from siyu.accounts.models import StaffMember
from siyu.core.errors import Conflict, InvalidInput
from siyu.core.services import event_record
from siyu.customers import events
from siyu.customers.models import Customer, CustomField, FieldKind

KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def field_create(
    *, key: str, name: str, kind: str, choices: list[str] | None = None
) -> CustomField:
    if not KEY.match(key):
        raise InvalidInput("key must be lower-case letters, digits or _ and start with a letter")
    if kind not in FieldKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(FieldKind.values)}")
    options = [c.strip() for c in choices or [] if c.strip()]
    if kind == FieldKind.CHOICE and not options:
        raise InvalidInput("a choice field needs at least one choice")
    if CustomField.objects.filter(key=key).exists():
        raise Conflict(f"a field with key {key!r} exists already")
    order = CustomField.objects.count()
    return CustomField.objects.create(
        key=key, name=name.strip(), kind=kind, choices=options, order=order
    )


def attribute_value_clean(field: CustomField, value: Any) -> Any:
    """``value`` as stored for ``field`` (None clears); InvalidInput if it does not fit."""
    if value is None or value == "":
        return None
    if field.kind == FieldKind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInput(f"{field.key}: a number is required")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{field.key}: {value!r} is not a number") from None
        return int(number) if number.is_integer() else number
    if field.kind == FieldKind.DATE:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise InvalidInput(f"{field.key}: dates are YYYY-MM-DD, not {value!r}") from None
    text = str(value).strip()
    if len(text) > 200:
        raise InvalidInput(f"{field.key}: at most 200 characters")
    if field.kind == FieldKind.CHOICE and text not in field.choices:
        raise InvalidInput(f"{field.key}: {text!r} is not one of {', '.join(field.choices)}")
    return text


def attributes_set(
    *, customer: Customer, values: dict[str, Any], source: str, by: StaffMember | None = None
) -> dict[str, Any]:
    """Set some custom fields (``None`` or "" clears one). Unknown keys are an error; nothing
    is written unless every value is valid."""
    fields = {f.key: f for f in CustomField.objects.all()}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown custom fields: {', '.join(unknown)}")
    coerced = {key: attribute_value_clean(fields[key], value) for key, value in values.items()}
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        attributes = dict(locked.attributes)
        changed = []
        for key, value in coerced.items():
            if attributes.get(key) == value:
                continue
            changed.append(key)
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        if changed:
            Customer.objects.filter(pk=customer.pk).update(attributes=attributes)
            event_record(
                type=events.CUSTOMER_FIELDS_CHANGED,
                source=source,
                customer_id=customer.pk,
                payload={
                    "changes": {key: attributes.get(key) for key in sorted(changed)},
                    "by": by.userid if by else "",
                },
            )
        customer.attributes = attributes
    return attributes
