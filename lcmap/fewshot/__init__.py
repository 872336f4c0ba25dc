"""Few-shot learning: fine-tune a pre-trained encoder on a few labelled patches
(:mod:`lcmap.fewshot.finetune`, ``lcmap finetune``) and choose which patches to label first
(:mod:`lcmap.fewshot.suggest`, ``lcmap suggest-labels``); pseudo-labels for self-training
(:mod:`lcmap.fewshot.self_training`, ``lcmap finetune --self-train``)."""
