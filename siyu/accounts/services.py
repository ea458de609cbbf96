"""Changes to the organisation and to credentials. Each writes its audit entry in-transaction."""

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from siyu.accounts.models import ApiToken, DataScope, Department, Role, StaffMember
from siyu.accounts.permissions import Action, access_staff_member, require
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput, NotFound, PermissionDenied

TOKEN_PREFIX = "siyu_"  # noqa: S105 (a public marker, not a secret)


def department_upsert(
    *, wecom_id: int, name: str, parent_wecom_id: int | None = None, order: int = 0
) -> Department:
    """Create or update a department from WeCom's address book (parent created on demand)."""
    parent = None
    if parent_wecom_id:
        parent, _ = Department.objects.get_or_create(
            wecom_id=parent_wecom_id, defaults={"name": str(parent_wecom_id)}
        )
    dept, _ = Department.objects.update_or_create(
        wecom_id=wecom_id, defaults={"name": name, "parent": parent, "order": order}
    )
    return dept


def staff_upsert(
    *,
    userid: str,
    name: str,
    department_wecom_ids: list[int] | None = None,
    main_department_wecom_id: int | None = None,
    **fields: Any,
) -> StaffMember:
    """Create or update a member from WeCom's address book; roles are Siyu's own and kept."""
    allowed = {"position", "mobile", "email", "avatar", "status", "customer_contact_enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"unknown staff fields: {', '.join(sorted(unknown))}")
    member, _ = StaffMember.objects.update_or_create(
        userid=userid, defaults={"name": name, **fields}
    )
    if department_wecom_ids is not None:
        depts = list(Department.objects.filter(wecom_id__in=department_wecom_ids))
        member.departments.set(depts)
        main = next((d for d in depts if d.wecom_id == main_department_wecom_id), None)
        if main is None and depts:
            main = depts[0]
        if member.main_department_id != (main.pk if main else None):
            member.main_department = main
            member.save(update_fields=["main_department"])
    return member


@transaction.atomic
def staff_set_role(
    *, actor: StaffMember, member_id: int, role: str, data_scope: str = ""
) -> StaffMember:
    """Change a member's role and data scope (empty scope = the role's default)."""
    member = access_staff_member(actor, member_id, write=True)
    if role not in Role.values:
        raise InvalidInput(f"unknown role {role!r}")
    if data_scope and data_scope not in DataScope.values:
        raise InvalidInput(f"unknown data scope {data_scope!r}")
    if Role.BOSS in (role, member.role) and actor.role != Role.BOSS:
        raise PermissionDenied("only a boss may appoint or change a boss")
    if member.pk == actor.pk:
        raise PermissionDenied("you cannot change your own permissions")
    before = {"role": member.role, "data_scope": member.data_scope}
    member.role = role
    member.data_scope = data_scope
    member.save(update_fields=["role", "data_scope"])
    audit_record(
        actor=actor,
        action="staff.permissions_changed",
        target=member,
        details={"before": before, "after": {"role": role, "data_scope": data_scope}},
    )
    return member


def staff_grant_login(*, member: StaffMember, username: str, password: str) -> StaffMember:
    """Give a member a console login (used by setup commands and the demo)."""
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exclude(staff_member=member).exists():
        raise InvalidInput(f"username {username!r} is taken")
    user = member.user or user_model(username=username)
    user.username = username
    user.set_password(password)
    user.save()
    if member.user_id != user.pk:
        member.user = user
        member.save(update_fields=["user"])
    return member


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, actor: StaffMember, name: str, staff_id: int | None = None) -> str:
    """Create a token acting as ``staff_id`` (default: the actor); returns it once, in clear."""
    require(actor, Action.TOKENS_MANAGE)
    staff = access_staff_member(actor, staff_id) if staff_id else actor
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput("a token needs a name of 1 to 64 characters")
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(name=name, staff=staff, prefix=prefix, key_hash=_hash_key(raw))
    audit_record(actor=actor, action="api_token.created", target=token, details={"name": name})
    return raw


@transaction.atomic
def api_token_revoke(*, actor: StaffMember, token_id: int) -> ApiToken:
    require(actor, Action.TOKENS_MANAGE)
    token = ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True).first()
    if token is None:
        raise NotFound("token not found")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="api_token.revoked", target=token, details={})
    return token


def api_token_authenticate(raw: str) -> StaffMember | None:
    """The member a bearer token acts as, or None. Resolves the tenant, so it is unscoped."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    prefix = raw[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = (
        ApiToken.unscoped.select_related("staff", "staff__tenant")
        .filter(prefix=prefix, revoked_at__isnull=True, staff__tenant__is_active=True)
        .first()
    )
    if token is None or not secrets.compare_digest(token.key_hash, _hash_key(raw)):
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.unscoped.filter(pk=token.pk).update(last_used_at=now)
    return token.staff
