"""GPU lossless codecs through NVIDIA nvCOMP's Python API (``nvidia.nvcomp``, nvCOMP 5/6).

The KV tensors are concatenated on the GPU into one byte buffer, optionally split into byte
planes (``-planes``: plane ``i`` holds byte ``i`` of every value), viewed as the element
type the algorithm models best, and compressed by ``nvcomp.Codec`` on PyTorch's current
CUDA stream (so CUDA events around the call time nvCOMP's kernels). nvCOMP's native
bitstream is self-describing (chunk sizes, uncompressed size); the kvbench frame around it
adds the KV layout, chunk digests verified on the host as the payload streams to the GPU, and a
device checksum for a payload already there (:mod:`kvbench.codecs.container`).

Element types: ANS models ``|u1`` bytes or ``<f2`` / ``<f4`` floats (bf16 is coded as
bytes: nvCOMP has no bf16 model); Bitcomp and Cascaded model integers, so 16-/32-bit
values are handed over as ``<i2`` / ``<i4`` bit patterns; Zstd and GDeflate see bytes.
"""

from __future__ import annotations

import torch

from kvbench.codecs import container
from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact

# codec name -> (nvCOMP algorithm, byte-plane split, element type per KV dtype)
_BYTES = {"bfloat16": torch.uint8, "float16": torch.uint8, "float32": torch.uint8}
_INTS = {"bfloat16": torch.int16, "float16": torch.int16, "float32": torch.int32}
_ANS = {"bfloat16": torch.uint8, "float16": torch.float16, "float32": torch.float32}
NVCOMP_CODECS = {
    "nvcomp-ans": ("ANS", False, _ANS),
    "nvcomp-zstd": ("Zstd", False, _BYTES),
    "nvcomp-gdeflate": ("GDeflate", False, _BYTES),
    "nvcomp-bitcomp": ("Bitcomp", False, _INTS),
    "nvcomp-cascaded": ("Cascaded", False, _INTS),
    "nvcomp-ans-planes": ("ANS", True, _BYTES),
    "nvcomp-zstd-planes": ("Zstd", True, _BYTES),
}
_TYPESTR = {torch.uint8: "|u1", torch.int16: "<i2", torch.int32: "<i4", torch.float16: "<f2", torch.float32: "<f4"}
_TYPED = ("ANS", "Bitcomp", "Cascaded")  # algorithms that take a data_type option
_ALIGN = 16  # bytes; covers every nvCOMP format's required buffer alignment


def unavailable() -> str | None:
    """Why nvCOMP codecs cannot run here (None when they can)."""
    if not torch.cuda.is_available():
        return "nvCOMP codecs need a CUDA device and none is visible"
    try:
        from nvidia import nvcomp  # noqa: F401
    except ImportError as exc:
        return f"nvCOMP is not installed (pip install nvidia-nvcomp-cu13 nvidia-libnvcomp-cu13): {exc}"
    return None


class NvcompCodec(container.DeviceCodec):
    """One nvCOMP algorithm over the whole KV, on the GPU."""

    lossless = True
    device = "cuda"

    def __init__(self, name: str):
        self.name = name
        self.algorithm, self.planes, self.elements = NVCOMP_CODECS[name]
        self._codecs: dict[tuple[int, torch.dtype], object] = {}

    def _codec(self, device: torch.device, element: torch.dtype):
        """An ``nvcomp.Codec`` bound to ``device``'s current PyTorch stream (cached per stream)."""
        from nvidia import nvcomp

        stream = torch.cuda.current_stream(device)
        key = (stream.cuda_stream, element)
        if key not in self._codecs:
            options = dict(data_type=_TYPESTR[element]) if self.algorithm in _TYPED else {}
            self._codecs[key] = nvcomp.Codec(
                algorithm=self.algorithm, device_id=device.index or 0, cuda_stream=stream.cuda_stream, **options
            )
        return self._codecs[key], stream.cuda_stream

    def compress_device(self, artifact: KVArtifact) -> tuple[dict, torch.Tensor]:
        from nvidia import nvcomp

        if artifact.device.type != "cuda":
            raise CodecError(f"{self.name} encodes KV on a CUDA device, got it on {artifact.device}")
        dtype = str(artifact.keys[0].dtype).removeprefix("torch.")
        flat = torch.cat([t.contiguous().reshape(-1).view(torch.uint8) for t in (*artifact.keys, *artifact.values)])
        if self.planes:
            flat = flat.view(-1, artifact.keys[0].element_size()).t().contiguous().reshape(-1)
        element = self.elements[dtype]
        codec, stream = self._codec(artifact.device, element)
        encoded = codec.encode(nvcomp.as_array(flat.view(element), cuda_stream=stream))
        payload = torch.as_tensor(encoded, device=artifact.device).view(torch.uint8)
        return dict(size=int(flat.numel()), algorithm=self.algorithm, element=_TYPESTR[element]), payload

    def decompress_device(self, header: dict, payload: torch.Tensor, device) -> KVArtifact:
        from nvidia import nvcomp

        device = torch.device(device)
        if device.type != "cuda":
            raise CodecError(f"{self.name} decodes on a CUDA device, asked for {device}")
        element = self.elements[header["dtype"]]
        codec, stream = self._codec(device, element)
        if payload.data_ptr() % _ALIGN:  # a view into a device-resident blob: nvCOMP wants aligned input
            payload = payload.clone()
        try:
            decoded = codec.decode(nvcomp.as_array(payload, cuda_stream=stream), data_type="|u1")
        except (RuntimeError, ValueError) as exc:
            raise CodecError(f"{self.name} payload does not decompress: {exc}") from exc
        flat = torch.as_tensor(decoded, device=device).view(torch.uint8).reshape(-1)
        if flat.numel() != header["params"]["size"]:
            raise CodecError(f"{self.name} decoded {flat.numel()} bytes, expected {header['params']['size']}")
        if self.planes:
            itemsize = torch.empty(0, dtype=getattr(torch, header["dtype"])).element_size()
            flat = flat.view(itemsize, -1).t().contiguous().reshape(-1)
        return container.artifact_from_raw(flat, header, device)
