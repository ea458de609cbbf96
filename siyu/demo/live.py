"""The demo company while the demo runs: every few seconds a customer scans a code, reads an
article, pays or leaves, through the running sandbox and Siyu (callbacks over HTTP, jobs on the
worker), so alerts, lists and dashboards change on screen."""

from __future__ import annotations

import random
import time

from siyu.core.tenancy import tenant_context
from siyu.customers.models import IdentityKind, RelationStatus, StaffRelation
from siyu.demo.replay import Company, Friend, RemoteStage, Tally

# What happens, how often: mostly new friends, some reading and buying, a few leaving.
ACTS = [("add", 0.5), ("open", 0.25), ("order", 0.15), ("delete", 0.1)]


def live_run(
    *, sandbox_url: str, interval: float, count: int = 0, seed: int | None = None
) -> Tally:
    """Act every ``interval`` seconds (jittered), ``count`` times or until stopped."""
    company = Company(RemoteStage(sandbox_url), random.Random(seed))
    company.load()
    if not company.codes:
        raise ValueError("the demo company has no active channel codes; run demo_world first")
    company.people = f"demo-live-{int(time.time())}-"  # never someone from the history
    done = 0
    while not count or done < count:
        # Pause first: at start the web server and worker are still coming up.
        time.sleep(interval * company.rng.uniform(0.5, 1.5))
        action = company.rng.choices([a for a, _ in ACTS], [w for _, w in ACTS])[0]
        with tenant_context(company.tenant):
            if action == "add":
                company.act("add")
            else:
                friend = _someone(company.rng)
                if friend is not None:
                    company.act(action, friend)
        done += 1
    return company.tally


def _someone(rng: random.Random) -> Friend | None:
    """A customer who is still someone's friend, picked at random."""
    relations = StaffRelation.objects.filter(status=RelationStatus.ACTIVE)
    total = relations.count()
    if not total:
        return None
    relation = relations.select_related("staff", "customer").order_by("pk")[rng.randrange(total)]
    unionid = relation.customer.identities.filter(kind=IdentityKind.UNIONID).values_list(
        "value", flat=True
    )
    return Friend(relation.external_userid, relation.staff.userid, next(iter(unionid), ""))
