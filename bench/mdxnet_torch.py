# The MDX-Net vocals network (KUIELab ConvTDFNet: dim_f 2048, g 32, 5 levels, 3 convs per TFC,
# TDF bottleneck 8, multiplicative skips; BatchNorm in eval mode) in PyTorch, timed on one
# [1, 4, 2048, T] chunk with 2 threads: the baseline of bench/fadvsep.sh. Weights are random
# (the time does not depend on them). Prints "seconds <wall> cpu <process cpu seconds>".
import sys, time, resource
import torch
import torch.nn as nn

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
T = int(sys.argv[1]) if len(sys.argv) > 1 else 256
F, G, N, L, BN = 2048, 32, 5, 3, 8

def cbr(ci, co, k, s, p):
    return nn.Sequential(nn.Conv2d(ci, co, k, s, p), nn.BatchNorm2d(co), nn.ReLU())

class TFC_TDF(nn.Module):
    def __init__(self, c, f):
        super().__init__()
        self.tfc = nn.Sequential(*[cbr(c, c, 3, 1, 1) for _ in range(L)])
        self.tdf = nn.Sequential(nn.Linear(f, f // BN, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                 nn.Linear(f // BN, f, bias=False), nn.BatchNorm2d(c), nn.ReLU())
    def forward(self, x):
        x = self.tfc(x)
        return x + self.tdf(x)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = cbr(4, G, 1, 1, 0)
        self.enc, self.ds, self.dec, self.us = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c, f = G, F
        for i in range(N):
            self.enc.append(TFC_TDF(c, f))
            self.ds.append(cbr(c, c + G, 2, 2, 0))
            c, f = c + G, f // 2
        self.mid = TFC_TDF(c, f)
        for i in range(N):
            self.us.append(nn.Sequential(nn.ConvTranspose2d(c, c - G, 2, 2), nn.BatchNorm2d(c - G), nn.ReLU()))
            c, f = c - G, f * 2
            self.dec.append(TFC_TDF(c, f))
        self.final = nn.Conv2d(G, 4, 1)
    def forward(self, x):
        x = self.first(x).transpose(-1, -2)
        skips = []
        for e, d in zip(self.enc, self.ds):
            x = e(x); skips.append(x); x = d(x)
        x = self.mid(x)
        for u, d in zip(self.us, self.dec):
            x = u(x) * skips.pop(); x = d(x)
        return self.final(x.transpose(-1, -2))

net = Net().eval()
x = torch.randn(1, 4, F, T) * 5
with torch.no_grad():
    net(x)
    c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    net(x)
    c1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.time()
print("seconds %.3f cpu %.3f" % (t1 - t0, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)))
