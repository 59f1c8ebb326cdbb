"""`AmazonTranslator` against a mocked Amazon Translate.

Amazon Translate cannot run here, and moto has no mock of it, so botocore's Stubber stands in for the
service: it checks the request each call makes and returns the response (or error) the real API would.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from gateway.pipeline.translate import AmazonTranslator
from univoice_core.errors import BadRequest, Unavailable


@pytest.fixture
def stubbed():
    client = boto3.client("translate", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield AmazonTranslator(client=client), stubber
        stubber.assert_no_pending_responses()


@pytest.mark.anyio
async def test_translate_text_request_and_response(stubbed):
    translator, stubber = stubbed
    stubber.add_response(
        "translate_text",
        {"TranslatedText": "Hello, world", "SourceLanguageCode": "es", "TargetLanguageCode": "en"},
        {"Text": "Hola, mundo", "SourceLanguageCode": "es", "TargetLanguageCode": "en"},
    )
    assert await translator.translate("Hola, mundo", "es", "en") == "Hello, world"
    assert await translator.translate("  ", "es", "en") == ""  # no call: the stubber would fail on it


@pytest.mark.anyio
async def test_unsupported_pair_is_a_bad_request(stubbed):
    translator, stubber = stubbed
    stubber.add_client_error("translate_text", service_error_code="UnsupportedLanguagePairException",
                             service_message="no such pair", http_status_code=400)
    with pytest.raises(BadRequest) as error:
        await translator.translate("Hola", "es", "xx")
    assert error.value.code == "unsupported_language"


@pytest.mark.anyio
async def test_service_errors_are_unavailable(stubbed):
    translator, stubber = stubbed
    stubber.add_client_error("translate_text", service_error_code="ServiceUnavailableException",
                             service_message="try later", http_status_code=503)
    with pytest.raises(Unavailable, match="Amazon Translate failed"):
        await translator.translate("Hola", "es", "en")
