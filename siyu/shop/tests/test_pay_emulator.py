"""The sandbox's pay emulator as WeChat Pay behaves: signed, encrypted notifications retried
until answered 2xx; merchant requests must be signed."""

import httpx

from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.shop.models import Payment, PaymentAccount
from siyu.shop.payments import WeChatPayProvider
from siyu.shop.tests.conftest import API_V3_KEY, APPID, MCHID
from siyu.testing.http import http_receiver


def test_notifications_are_retried_until_answered_and_verify() -> None:
    account = PaymentAccount(mchid=MCHID, appid=APPID, api_v3_key=API_V3_KEY)
    with Sandbox(retry_delay=0.02) as sandbox, http_receiver([500, 503, 204]) as receiver:
        account.api_base_url = sandbox.base_url + "/"
        provider = WeChatPayProvider(account)
        with SandboxControl(sandbox.base_url) as control:
            control.add_pay_merchant(MCHID, APPID, API_V3_KEY)
            payment = Payment(out_trade_no="P20261129000000000001", amount_fen=990)
            params = provider.create_payment(
                payment=payment, description="x", openid="o1", notify_url=receiver.url
            )
            control.pay(params["prepay_id"])
            assert control.pay_flush(timeout=10)
            [log] = control.pay_notifications()
        assert (log["status"], log["history"]) == ("delivered", [500, 503, 204])
        assert len(receiver.requests) == 3
        for request in receiver.requests:
            notice = provider.verify_notification(headers=request.headers, body=request.body)
            assert (notice.out_trade_no, notice.amount_fen, notice.trade_state) == (
                payment.out_trade_no,
                990,
                "SUCCESS",
            )
        # An unsigned merchant request is refused, as WeChat Pay does.
        unsigned = httpx.post(sandbox.base_url + "/v3/pay/transactions/jsapi", json={})
        assert (unsigned.status_code, unsigned.json()["code"]) == (401, "SIGN_ERROR")
