"""A participant's personal poster: the campaign's artwork, their avatar and nickname, and their
own code, drawn with Pillow into a PNG that is cached on the participant.

The QR image is fetched through the WeCom gateway (the contact way's ``qr_code``). If that fails
(WeCom unreachable, an expired URL) the poster still ships, with a framed box carrying the URL
so operations can see what is missing; the next template change redraws it. The avatar is drawn
as the nickname's first character in a circle: WeChat's avatar CDN is outside the gateway and
not fetched from servers here.
"""

import logging
from io import BytesIO
from typing import TYPE_CHECKING

from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from siyu.core.tenancy import get_current_tenant
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import WeComError

if TYPE_CHECKING:
    from siyu.fission.models import Participant

logger = logging.getLogger(__name__)

LAYOUT_KEYS = ("avatar", "nickname", "qr")


class PosterAssetMissing(Exception):
    """The template cannot be drawn (artwork gone from storage, layout incomplete)."""


def _qr(url: str, size: int) -> Image.Image:
    if url:
        try:
            with WeComClient.for_tenant(get_current_tenant()) as wecom:
                data, _type = wecom.qr_image(url)
            with Image.open(BytesIO(data)) as fetched:
                return fetched.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
        except (WeComError, UnidentifiedImageError, OSError) as exc:
            logger.warning("poster QR %s not fetched: %s", url, exc)
    box = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(box)
    draw.rectangle((0, 0, size - 1, size - 1), outline="black", width=max(size // 40, 1))
    font = ImageFont.load_default(size=max(size // 12, 8))
    label = url or "QR"
    for line, start in enumerate(range(0, len(label), 16)):
        draw.text((4, 4 + line * (size // 10)), label[start : start + 16], fill="black", font=font)
    return box


def _avatar(nickname: str, size: int) -> Image.Image:
    circle = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(circle)
    draw.ellipse((0, 0, size - 1, size - 1), fill=(7, 193, 96, 255))
    font = ImageFont.load_default(size=size // 2)
    draw.text((size // 2, size // 2), (nickname or "?")[:1], fill="white", font=font, anchor="mm")
    return circle


def poster_draw(
    artwork: bytes, layout: dict[str, dict[str, int]], *, nickname: str, qr_url: str
) -> bytes:
    """The PNG bytes of one poster. Raises ``PosterAssetMissing`` for an unusable template."""
    if any(key not in layout for key in LAYOUT_KEYS):
        raise PosterAssetMissing(_("海报模板缺少头像、昵称或二维码的位置"))
    try:
        with Image.open(BytesIO(artwork)) as opened:
            canvas = opened.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise PosterAssetMissing(_("海报底图无法读取")) from exc
    spot = layout["avatar"]
    avatar = _avatar(nickname, spot["size"])
    canvas.paste(avatar, (spot["x"], spot["y"]), avatar)
    spot = layout["nickname"]
    font = ImageFont.load_default(size=spot["size"])
    ImageDraw.Draw(canvas).text((spot["x"], spot["y"]), nickname[:16], fill="black", font=font)
    spot = layout["qr"]
    canvas.paste(_qr(qr_url, spot["size"]), (spot["x"], spot["y"]))
    out = BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def poster_render(participant: "Participant") -> None:
    """Draw and store the participant's poster, or record why it could not be drawn. Never
    raises for a bad template: one broken poster must not stop the campaign."""
    campaign = participant.campaign
    if not campaign.poster_artwork:
        participant.poster_error = _("活动未设置海报模板")
        participant.save(update_fields=["poster_error"])
        return
    try:
        with campaign.poster_artwork.open("rb") as handle:
            artwork = handle.read()
        png = poster_draw(
            artwork,
            campaign.poster_layout,
            nickname=participant.customer.name or str(participant.customer),
            qr_url=participant.qr_code,
        )
    except (PosterAssetMissing, OSError) as exc:
        logger.warning("poster of participant %s not drawn: %s", participant.pk, exc)
        message = str(exc) if isinstance(exc, PosterAssetMissing) else _("海报底图已丢失")
        participant.poster_error = message[:300]
        participant.save(update_fields=["poster_error"])
        return
    participant.poster.save(f"{campaign.pk}/{participant.pk}.png", ContentFile(png), save=False)
    participant.poster_error = ""
    participant.save(update_fields=["poster", "poster_error"])
