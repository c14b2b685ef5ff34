"""Sample corpus with known ground truth: real faces rendered along designed head-pose tracks.

`build_sample_corpus(out_dir, SynthConfig())` writes the layout of every registered corpus
(`layouts`) plus `truth/<clip_id>.npy` and `truth.json`; see `corpus` for the output and `plan`
for the clips.
"""

from space_data.synth.corpus import SynthConfig, build_sample_corpus, plan

__all__ = ["SynthConfig", "build_sample_corpus", "plan"]
