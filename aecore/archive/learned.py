"""The learned codecs behind the same contract: a modality's model (``aecore.Compressor``, in
lossless mode) as one more candidate, found by id ``aec-<modality>``.

The payload is the learned format (:mod:`aecore.payload`); decode needs the model the table
records for that modality (``CodecContext.compressors``). A file the model's containers cannot
rebuild (the learned path would only store it) is not a learned candidate: the classic codecs
take it.
"""

from __future__ import annotations

from typing import ClassVar

from aecore.archive.codec import CodecContext, FileCodec, register_file_codec

__all__ = ["LearnedCodec", "learned_codec_id"]


def learned_codec_id(modality: str) -> str:
    return f"aec-{modality}"


class LearnedCodec(FileCodec):
    modality: ClassVar[str]
    learned = True
    efforts = ("default", "max")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.kinds = (cls.modality,)

    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        compressor = ctx.compressors.get(self.modality)
        if compressor is None or not compressor.lossless:
            return None
        sample = compressor.load(data)
        if compressor._stored(sample):  # noqa: SLF001 - the model would only store it
            return None
        [encoded] = compressor.encode([sample])  # verified there: decodes to the very bytes
        return encoded.payload

    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        compressor = ctx.compressors.get(self.modality)
        if compressor is None:
            raise ValueError(f"this row is coded by the {self.modality} model, which the archive does not name")
        data, _, _ = compressor.decode(payload)
        return data


@register_file_codec("aec-image")
class LearnedImageCodec(LearnedCodec):
    modality = "image"


@register_file_codec("aec-audio")
class LearnedAudioCodec(LearnedCodec):
    modality = "audio"


@register_file_codec("aec-text")
class LearnedTextCodec(LearnedCodec):
    modality = "text"
    #: a byte stream coded on its own: alike texts coded together by ``cm`` can be smaller than
    #: each by the model (13 scipy sources: 18,791 bytes by a model fitted on the folder, about
    #: 17,400 in a ``solid-cm`` block), so the files it wins are offered to the solid blocks too
    #: (tried with and without them: ``aecore.archive.solid.pack``)
    solid = True
