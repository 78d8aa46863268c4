# Makes other_arch.onnx: a small conv net that is not an MDX-Net (Conv, Relu, Reshape, Gemm,
# Softmax) but takes the same [batch, 4, 64, 32] input, for the "foreign architecture" tests.
# Run: /usr/bin/python3 tests/data/fadvsep/make_other_onnx.py  (Debian python3-torch 1.13)
import os
import torch
import torch.nn as nn

torch.manual_seed(1)
net = nn.Sequential(nn.Conv2d(4, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 64 * 32, 8), nn.Softmax(-1))
here = os.path.dirname(os.path.abspath(__file__))
torch.onnx.export(net.eval(), torch.zeros(1, 4, 64, 32), os.path.join(here, "other_arch.onnx"), opset_version=11,
                  input_names=["input"], output_names=["output"])
