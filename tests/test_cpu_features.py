"""bf16_support reads the CPU's flags the way Linux prints them (x86 `flags`, Arm `Features`)."""

from xlt.models.cpu_features import bf16_support, cpu_flags

X86 = """processor\t: 0
vendor_id\t: {vendor}
model name\t: test CPU
flags\t\t: fpu vme sse sse2 avx avx2 avx512f {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu
"""
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve {extra}\nCPU implementer\t: 0x41\n"


def _write(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_amx_is_preferred_over_avx512_bf16(tmp_path):
    s = bf16_support(_write(tmp_path, X86.format(vendor="GenuineIntel", extra="avx512_bf16 amx_tile amx_bf16")))
    assert s.native and s.unit == "AMX" and "amx_bf16" in str(s)


def test_avx512_bf16_alone_is_native(tmp_path):
    s = bf16_support(_write(tmp_path, X86.format(vendor="AuthenticAMD", extra="avx512_bf16 avx512_vnni")))
    assert s.native and s.unit == "AVX512-BF16"


def test_arm_bf16_feature(tmp_path):
    s = bf16_support(_write(tmp_path, ARM.format(extra="bf16 i8mm")))
    assert s.native and s.unit == "Arm BF16"


def test_plain_avx512_is_not_native_bf16(tmp_path):
    path = _write(tmp_path, X86.format(vendor="GenuineIntel", extra="avx512_vnni"))
    s = bf16_support(path)
    assert not s.native and s.unit == "" and str(s).startswith("no native bf16")
    assert "avx512_vnni" in cpu_flags(path) and "fpu" in cpu_flags(path)


def test_missing_cpuinfo_falls_back_to_torch_probes(tmp_path):
    assert cpu_flags(tmp_path / "nowhere") is None
    s = bf16_support(tmp_path / "nowhere")
    assert "torch.cpu probe" in s.source and isinstance(s.native, bool)
