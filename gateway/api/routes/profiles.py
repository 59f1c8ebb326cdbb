"""Voice profiles: enrol from an upload, list, get, delete, compare with another clip.

The two upload routes authenticate before they read the body: their multipart form is parsed by `_form` after
the credentials and scope were checked (FastAPI would parse a declared `File`/`Form` first), and the body is
capped while it streams in (`gateway/api/body_limit.py`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from gateway.api.deps import Services, principal, require, services
from gateway.profiles import CONSENT_TEXT, CONSENT_VERSION
from gateway.schemas import CompareResult, ConsentOut, DisplayName, ProfileOut
from gateway.security import SCOPE_PROFILES_WRITE, Principal
from univoice_core.errors import BadRequest, PayloadTooLarge

router = APIRouter(prefix="/v1/profiles", tags=["voice profiles"])
ProfileId = Path(max_length=64, examples=["p_3b9e0d1c2a4f4e5d8c7b6a5f4e3d2c1b"])
AUDIO_HELP = "WAV, FLAC or OGG at 8-48 kHz, mono or stereo (mixed to mono)"


class EnrolmentForm(BaseModel):
    name: DisplayName = Field(examples=["Ada at the office"])
    consent: bool = Field(description="The speaker agreed to the consent text (GET /v1/profiles/consent)",
                          examples=[True])
    consent_version: str | None = Field(default=None, max_length=32, examples=[CONSENT_VERSION],
                                        description="The version of the consent text the speaker was shown; an "
                                                    "outdated one is refused (consent_outdated)")


def _multipart(fields: dict) -> dict:
    """The OpenAPI request body of a route that parses its own form: a required `file` plus `fields`."""
    properties = {"file": {"type": "string", "format": "binary", "description": AUDIO_HELP}, **fields}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": list(properties)}}}}}


async def _form(request: Request, svc: Services, fields: type[BaseModel] | None = None):
    """The upload's bytes (and its validated text fields), read only now that the caller is authenticated (and
    holds one of its upload slots)."""
    try:
        async with request.form(max_files=1, max_fields=4, max_part_size=4096) as form:  # closes spooled files
            upload = form.get("file")
            errors = [] if isinstance(upload, UploadFile) else [
                {"type": "missing", "loc": ("body", "file"), "msg": "Field required: send the audio as the `file` "
                 "part", "input": None}]
            values = None
            if fields is not None:
                try:
                    values = fields.model_validate({key: value for key, value in form.items() if key != "file"})
                except ValidationError as error:
                    errors += [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
            if errors:
                raise RequestValidationError(errors)
            # One byte past the limit is enough to know it is too large, without reading more of it.
            return await upload.read(svc.settings.max_upload_bytes + 1), values
    except HTTPException as error:
        if error.status_code != 413:  # the body limit stopped the upload as it streamed in
            raise
        raise PayloadTooLarge(f"the upload is larger than {svc.settings.max_upload_bytes} bytes; send a shorter "
                              "recording") from None
    except ClientDisconnect:
        raise BadRequest("the upload was interrupted; send it again", code="upload_interrupted") from None


@router.post("", response_model=ProfileOut, status_code=status.HTTP_201_CREATED,
             summary="Enrol a voice profile from 3-60 s of speech",
             openapi_extra=_multipart(EnrolmentForm.model_json_schema()["properties"]))
async def enrol(request: Request, who: Principal = Depends(require(SCOPE_PROFILES_WRITE)),
                svc: Services = Depends(services)) -> ProfileOut:
    with svc.profiles.uploads.hold(who.subject):
        data, form = await _form(request, svc, EnrolmentForm)
        return ProfileOut.model_validate(await svc.profiles.enrol(who.subject, form.name, data, form.consent,
                                                                  form.consent_version))


@router.get("/consent", response_model=ConsentOut, summary="The consent text a speaker agrees to before enrolling")
async def consent() -> ConsentOut:
    return ConsentOut(version=CONSENT_VERSION, text=CONSENT_TEXT)


@router.get("", response_model=list[ProfileOut], summary="List your voice profiles")
async def list_profiles(who: Principal = Depends(principal), svc: Services = Depends(services)) -> list[ProfileOut]:
    return [ProfileOut.model_validate(p) for p in await svc.profiles.list(who.subject)]


@router.get("/{profile_id}", response_model=ProfileOut, summary="Get one of your voice profiles")
async def get_profile(profile_id: str = ProfileId, who: Principal = Depends(principal),
                      svc: Services = Depends(services)) -> ProfileOut:
    return ProfileOut.model_validate(await svc.profiles.get(who.subject, profile_id))


@router.delete("/{profile_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a voice profile and its stored embedding and audio")
async def delete_profile(profile_id: str = ProfileId, who: Principal = Depends(require(SCOPE_PROFILES_WRITE)),
                         svc: Services = Depends(services)) -> Response:
    await svc.profiles.delete(who.subject, profile_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{profile_id}/compare", response_model=CompareResult,
             summary="Cosine similarity between the profile and the speaker of another clip",
             openapi_extra=_multipart({}))
async def compare(request: Request, profile_id: str = ProfileId,
                  who: Principal = Depends(require(SCOPE_PROFILES_WRITE)),
                  svc: Services = Depends(services)) -> CompareResult:
    with svc.profiles.uploads.hold(who.subject):
        data, _ = await _form(request, svc)
        score, seconds = await svc.profiles.compare(who.subject, profile_id, data)
    return CompareResult(profile_id=profile_id, score=score, speech_seconds=seconds)
