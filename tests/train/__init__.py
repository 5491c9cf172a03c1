"""Tests of nas.train: losses and loop, teacher, pretrained Lite weights, the experiment."""
