"""The learned codecs behind the same contract: a modality's model (``aecore.Compressor``, in
lossless mode) as one more candidate, found by id ``aec-<modality>``.

The payload is the learned format (:mod:`aecore.payload`); decode needs the model the table
records for that modality (``CodecContext.compressors``). A file the model's containers cannot
rebuild (the learned path would only store it) is not a learned candidate: the classic codecs
take it.
"""

from __future__ import annotations

from typing import ClassVar

from aecore.archive.codec import CodecContext, FileCodec, classic_payload, register_file_codec, split_classic

__all__ = ["LearnedCodec", "PrimedCmCodec", "learned_codec_id"]


def learned_codec_id(modality: str) -> str:
    return f"aec-{modality}"


class LearnedCodec(FileCodec):
    modality: ClassVar[str]
    learned = True
    checked_at_encode = True
    efforts = ("default", "max")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.kinds = (cls.modality,)
        cls.model_modality = cls.modality

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
    #: the causal byte model codes 2-9 KB/s; the primed context-mixing coder (``aec-cm``, below)
    #: codes the same text model's files at about 400 KB/s, and smaller: tried at max only
    efforts = ("max",)
    #: a byte stream coded on its own: alike texts coded together by a context mixer can be smaller
    #: than each by the model (13 scipy sources: 18,791 bytes by a model fitted on the folder,
    #: about 17,400 in a ``solid-cm`` block), so the files it wins are offered to the solid blocks
    #: too (tried with and without them: ``aecore.archive.solid.pack``)
    solid = True


@register_file_codec("aec-cm")
class PrimedCmCodec(FileCodec):
    """The context-mixing coder (:mod:`aecore.archive.cm2`) started from the primer the archive's
    text model fitted on its collection (``aec train``): each file is coded as if the collection's
    typical text came just before it. Fast (the coder's own speed), so tried at the default
    effort; the payload is the coder's stream under this codec's id, decoded with the primer of
    the text model the table records."""

    kinds = ("text",)
    efforts = ("default", "max")
    learned = True
    model_modality = "text"
    solid = True  # a byte stream: alike texts may still code smaller together in a block

    @staticmethod
    def _primer(ctx: CodecContext):  # noqa: ANN205
        compressor = ctx.compressors.get("text")
        return None if compressor is None else compressor.model.primer()

    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        from aecore.archive.cm2 import cm2_compress

        primer = self._primer(ctx)
        if primer is None:
            return None
        stream = cm2_compress(data, primer)
        return None if stream is None else classic_payload(self.codec_id, stream)

    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        from aecore.archive.cm2 import cm2_decompress

        found = split_classic(payload)
        if found is None or found[0] != self.codec_id:
            raise ValueError(f"not an {self.codec_id} payload; the row is corrupt")
        primer = self._primer(ctx)
        if primer is None:
            raise ValueError("this row is coded after the text model's primer, and the archive names no text model "
                             "with one; decode with the model the table records")
        return cm2_decompress(found[1], size, primer)  # never more than the row's size
