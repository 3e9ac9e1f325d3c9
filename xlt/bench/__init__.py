"""Performance benchmarks behind `xlt bench` (each prints a rich table and can write JSON).

`xlt.bench.model`: native DeBERTa vs transformers at a model's real size, random weights, no download.
"""
