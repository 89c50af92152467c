"""Item 6 of the benchmarks: fast engine on CUDA vs the same on the CPU, SDT-8-768 / 224 px / T = 4 (paper45nm), images per second."""
import json, os, platform, statistics, sys, time
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdt_model import sdt_8_768, images
from statten_hw.ir import lower
from statten_hw.quant import quantize
from statten_hw.mapping import map_model
from statten_hw.pipeline import Deployment
from statten_hw.simulator import simulate

m = sdt_8_768(); x = images(16, seed=7)
g = lower(m); q = quantize(g, images(2, seed=3)); mp = map_model(g, 'paper45nm', 2)
d = Deployment(None, m, q, mp, 'random')

def rate(device, n, repeats=3):
    simulate(d, x[:n], device=device)  # warm-up
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize(); t = time.perf_counter(); simulate(d, x[:n], device=device); torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times), times

gpu, gpu_t = rate('cuda', 16)
cpu, cpu_t = rate('cpu', 1)
a, b = simulate(d, x[:2], device='cpu'), simulate(d, x[:2], device='cuda')
same = torch.equal(a.logits_int, b.logits_int.cpu()) and a.counts.equal(b.counts) == []
res = {"benchmark": "fast engine CUDA vs CPU, SDT-8-768 224px T=4 B=2, paper45nm", "gpu": torch.cuda.get_device_name(0),
       "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
       "gpu_images_per_s": gpu, "gpu_batch": 16, "gpu_times_s": gpu_t, "cpu_images_per_s": cpu, "cpu_batch": 1,
       "cpu_times_s": cpu_t, "ratio": gpu / cpu, "cpu_and_gpu_counts_and_logits_identical": same,
       "command": "python benchmarks/gpu_vs_cpu_sdt.py (on the device machine; statten_hw on PYTHONPATH)"}
print(json.dumps(res, indent=1))
json.dump(res, open(os.path.join(os.environ.get('OUT', '.'), 'gpu_vs_cpu_sdt.json'), 'w'), indent=1)
