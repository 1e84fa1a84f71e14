"""The built-in recipes, one per model family (registered in pyproject.toml).

What a recipe carries: what changes whether the family loads or how it scores
(``max_model_len``, the processor's image resolution, stop token ids, vLLM
arguments such as ``--hf-overrides`` or the vision LoRA's rank, the HF class,
whether remote code is needed). What it leaves out: tuning for one GPU's
memory or speed (``max_num_seqs``, ``enforce_eager``, ``tensor_parallel_size``,
``dtype`` in vLLM's examples, "tested on a single L4"); those belong in a
model's ``server_args``, and ``max_num_seqs`` would cap the very concurrency a
case measures.

Most settings come from vLLM's vision-language offline example, which states
per family what it takes to run the model card's checkpoint; the HF class and
the image resolution from the model cards. Where the example lowers the card's
resolution to save memory (Idefics3's ``longest_edge`` 3*364 against the
card's 4*364), the recipe keeps the checkpoint's own (card) setting.
"""

from __future__ import annotations

from .base import Recipe

#: vLLM's offline vision-language example (the per-family engine arguments).
EXAMPLE = (
    "https://github.com/vllm-project/vllm/blob/main/examples/offline_inference/vision_language.py"
)
#: The same example before vLLM 0.10.2 dropped Mllama (Llama 3.2 Vision).
EXAMPLE_WITH_MLLAMA = (
    "https://github.com/vllm-project/vllm/blob/b4e69e0af33f4698e157a262cc787fe61983cd3d"
    "/examples/offline_inference/vision_language.py"
)


def card(repo: str) -> str:
    """A model card on the Hugging Face Hub."""
    return f"https://huggingface.co/{repo}"


# Qwen-VL: the example caps the processor at 1280 visual tokens of 28x28
# pixels (min_pixels 28*28, max_pixels 1280*28*28), the range the cards give
# for balancing speed and memory.
QWEN_PIXELS = {"min_pixels": 28 * 28, "max_pixels": 1280 * 28 * 28}

QWEN2_VL = Recipe(
    name="qwen2-vl",
    family="Qwen2-VL",
    architectures=("Qwen2VLForConditionalGeneration",),
    model_types=("qwen2_vl",),
    max_model_len=4096,
    mm_processor_kwargs=QWEN_PIXELS,
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

QWEN2_5_VL = Recipe(
    name="qwen2.5-vl",
    family="Qwen2.5-VL",
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    model_types=("qwen2_5_vl",),
    max_model_len=4096,
    mm_processor_kwargs=QWEN_PIXELS,
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

QWEN3_VL = Recipe(
    name="qwen3-vl",
    family="Qwen3-VL (dense and MoE)",
    architectures=("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"),
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    max_model_len=4096,
    mm_processor_kwargs=QWEN_PIXELS,
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

# InternVL2/2.5/3 as published (remote code, config "InternVLChatModel"); the
# "-hf" conversions load natively. Stop tokens differ per variant (the example
# looks them up in each tokenizer), so the recipe names none.
INTERNVL = Recipe(
    name="internvl",
    family="InternVL2 / 2.5 / 3 (remote code)",
    architectures=("InternVLChatModel",),
    model_types=("internvl_chat",),
    max_model_len=8192,
    hf_model_class="AutoModel",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "needs_remote_code": EXAMPLE,
        "hf_model_class": card("OpenGVLab/InternVL3-2B"),
    },
)

INTERNVL_HF = Recipe(
    name="internvl-hf",
    family="InternVL3 (-hf, native transformers)",
    architectures=("InternVLForConditionalGeneration",),
    model_types=("internvl",),
)

# Idefics3 and SmolVLM (v1) share the architecture. Each checkpoint's own
# processor config holds its card's resolution (Idefics3-8B: longest_edge
# 4*364; SmolVLM: 4*384), so the family recipe sets no size.
IDEFICS3 = Recipe(
    name="idefics3",
    family="Idefics3 / SmolVLM (v1)",
    architectures=("Idefics3ForConditionalGeneration",),
    model_types=("idefics3",),
    max_model_len=8192,
    sources={"max_model_len": EXAMPLE},
)

SMOLVLM = Recipe(
    name="smolvlm",
    family="SmolVLM2",
    architectures=("SmolVLMForConditionalGeneration",),
    model_types=("smolvlm",),
    max_model_len=8192,
    mm_processor_kwargs={"max_image_size": {"longest_edge": 384}},
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

LLAVA = Recipe(
    name="llava",
    family="LLaVA-1.5",
    architectures=("LlavaForConditionalGeneration",),
    model_types=("llava",),
    max_model_len=4096,
    sources={"max_model_len": EXAMPLE},
)

LLAVA_NEXT = Recipe(
    name="llava-next",
    family="LLaVA-1.6 (NeXT)",
    architectures=("LlavaNextForConditionalGeneration",),
    model_types=("llava_next",),
    max_model_len=8192,
    sources={"max_model_len": EXAMPLE},
)

LLAVA_ONEVISION = Recipe(
    name="llava-onevision",
    family="LLaVA-OneVision",
    architectures=("LlavaOnevisionForConditionalGeneration",),
    model_types=("llava_onevision",),
    max_model_len=16384,
    sources={"max_model_len": EXAMPLE},
)

PHI3_5_VISION = Recipe(
    name="phi-3.5-vision",
    family="Phi-3 / Phi-3.5-Vision",
    architectures=("Phi3VForCausalLM",),
    model_types=("phi3_v",),
    max_model_len=4096,
    # the card: num_crops=16 for single-frame images (4 for multi-frame)
    mm_processor_kwargs={"num_crops": 16},
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "mm_processor_kwargs": card("microsoft/Phi-3.5-vision-instruct"),
        "hf_model_class": card("microsoft/Phi-3.5-vision-instruct"),
        "needs_remote_code": EXAMPLE,
    },
)

# Phi-4-multimodal's vision tower comes with a LoRA (vision-lora/ in the
# checkpoint) that vLLM serves as a LoRA adapter: the recipe enables LoRA at
# the rank the example uses; the adapter's path is the checkpoint's, so a
# models.csv row adds `--lora-modules vision=<checkpoint>/vision-lora`.
PHI4_MULTIMODAL = Recipe(
    name="phi-4-multimodal",
    family="Phi-4-multimodal",
    architectures=("Phi4MMForCausalLM",),
    model_types=("phi4mm",),
    vllm_args=("--enable-lora", "--max-lora-rank", "320", "--max-num-batched-tokens", "12800"),
    max_model_len=5120,
    mm_processor_kwargs={"dynamic_hd": 16},
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    sources={
        "vllm_args": EXAMPLE,
        "max_model_len": EXAMPLE,
        "mm_processor_kwargs": EXAMPLE,
        "hf_model_class": card("microsoft/Phi-4-multimodal-instruct"),
        "needs_remote_code": EXAMPLE,
    },
)

MINICPM_V = Recipe(
    name="minicpm-v",
    family="MiniCPM-V",
    architectures=("MiniCPMV",),
    model_types=("minicpmv",),
    max_model_len=4096,
    hf_model_class="AutoModel",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "hf_model_class": card("openbmb/MiniCPM-V-2_6"),
        "needs_remote_code": EXAMPLE,
    },
)

MINICPM_O = Recipe(
    name="minicpm-o",
    family="MiniCPM-o",
    architectures=("MiniCPMO",),
    model_types=("minicpmo",),
    max_model_len=4096,
    hf_model_class="AutoModel",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "hf_model_class": card("openbmb/MiniCPM-o-2_6"),
        "needs_remote_code": EXAMPLE,
    },
)

# The HF-format Pixtral checkpoint (mistral-community/pixtral-12b) declares
# LlavaForConditionalGeneration / llava like LLaVA-1.5, so it cannot be told
# apart from config.json's top level: name this recipe in models.csv.
PIXTRAL = Recipe(
    name="pixtral",
    family="Pixtral (HF format)",
    max_model_len=6144,
    auto_match=False,
    sources={"max_model_len": EXAMPLE},
)

MISTRAL3 = Recipe(
    name="mistral-3",
    family="Mistral Small 3.1 (vision)",
    architectures=("Mistral3ForConditionalGeneration",),
    model_types=("mistral3",),
    max_model_len=8192,
    sources={"max_model_len": EXAMPLE},
)

# Gemma 3 was evaluated with pan & scan on documents; the example turns it on.
GEMMA3 = Recipe(
    name="gemma-3",
    family="Gemma 3",
    architectures=("Gemma3ForConditionalGeneration",),
    model_types=("gemma3",),
    max_model_len=2048,
    mm_processor_kwargs={"do_pan_and_scan": True},
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

GEMMA3N = Recipe(
    name="gemma-3n",
    family="Gemma 3n",
    architectures=("Gemma3nForConditionalGeneration",),
    model_types=("gemma3n",),
    max_model_len=2048,
    sources={"max_model_len": EXAMPLE},
)

# vLLM dropped Mllama in 0.10.2: the recipe serves the HF backend (and older vLLMs).
MLLAMA = Recipe(
    name="mllama",
    family="Llama 3.2 Vision (Mllama)",
    architectures=("MllamaForConditionalGeneration",),
    model_types=("mllama",),
    max_model_len=8192,
    sources={"max_model_len": EXAMPLE_WITH_MLLAMA},
)

LLAMA4 = Recipe(
    name="llama-4",
    family="Llama 4",
    architectures=("Llama4ForConditionalGeneration",),
    model_types=("llama4",),
    max_model_len=8192,
    sources={"max_model_len": EXAMPLE},
)

# glm-4v-9b's own config.json says ChatGLMModel / chatglm, shared with the
# text-only GLM-4 models, so the recipe matches only the architecture vLLM
# needs (the override below); name it in models.csv for THUDM/zai-org glm-4v-9b.
GLM4V = Recipe(
    name="glm-4v",
    family="GLM-4V (glm-4v-9b, remote code)",
    architectures=("GLM4VForCausalLM",),
    vllm_args=("--hf-overrides", '{"architectures":["GLM4VForCausalLM"]}'),
    max_model_len=2048,
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    stop_token_ids=(151329, 151336, 151338),
    sources={
        "vllm_args": EXAMPLE,
        "max_model_len": EXAMPLE,
        "hf_model_class": card("zai-org/glm-4v-9b"),
        "needs_remote_code": EXAMPLE,
        "stop_token_ids": EXAMPLE,
    },
)

GLM4_1V = Recipe(
    name="glm-4.1v",
    family="GLM-4.1V / GLM-4.5V",
    architectures=("Glm4vForConditionalGeneration", "Glm4vMoeForConditionalGeneration"),
    model_types=("glm4v", "glm4v_moe"),
    max_model_len=4096,
    mm_processor_kwargs={"size": {"shortest_edge": 12544, "longest_edge": 47040000}},
    sources={"max_model_len": EXAMPLE, "mm_processor_kwargs": EXAMPLE},
)

MOLMO = Recipe(
    name="molmo",
    family="Molmo",
    architectures=("MolmoForCausalLM",),
    model_types=("molmo",),
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    sources={
        "hf_model_class": card("allenai/Molmo-7B-D-0924"),
        "needs_remote_code": EXAMPLE,
    },
)

PALIGEMMA = Recipe(
    name="paligemma",
    family="PaliGemma / PaliGemma 2",
    architectures=("PaliGemmaForConditionalGeneration",),
    model_types=("paligemma",),
)

ARIA = Recipe(
    name="aria",
    family="Aria",
    architectures=("AriaForConditionalGeneration",),
    model_types=("aria",),
    max_model_len=4096,
    stop_token_ids=(93532, 93653, 944, 93421, 1019, 93519),
    sources={"max_model_len": EXAMPLE, "stop_token_ids": EXAMPLE},
)

KIMI_VL = Recipe(
    name="kimi-vl",
    family="Kimi-VL",
    architectures=("KimiVLForConditionalGeneration",),
    model_types=("kimi_vl",),
    max_model_len=4096,
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "hf_model_class": card("moonshotai/Kimi-VL-A3B-Instruct"),
        "needs_remote_code": EXAMPLE,
    },
)

H2OVL = Recipe(
    name="h2ovl",
    family="H2OVL-Mississippi",
    architectures=("H2OVLChatModel",),
    model_types=("h2ovl_chat",),
    max_model_len=8192,
    hf_model_class="AutoModel",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "hf_model_class": card("h2oai/h2ovl-mississippi-800m"),
        "needs_remote_code": EXAMPLE,
    },
)

OVIS = Recipe(
    name="ovis",
    family="Ovis2 / Ovis2.5",
    architectures=("Ovis", "Ovis2_5"),
    model_types=("ovis", "ovis2_5"),
    max_model_len=4096,
    hf_model_class="AutoModelForCausalLM",
    needs_remote_code=True,
    sources={
        "max_model_len": EXAMPLE,
        "hf_model_class": card("AIDC-AI/Ovis2-1B"),
        "needs_remote_code": EXAMPLE,
    },
)

# The project's built-in random test model (builtin:tiny-idefics3): named by
# the built-in model itself, never auto-matched (its architecture is
# Idefics3's, which auto-matching gives the idefics3 recipe).
TINY_IDEFICS3 = Recipe(
    name="tiny-idefics3",
    family="built-in tiny test model",
    architectures=("Idefics3ForConditionalGeneration",),
    model_types=("idefics3",),
    max_model_len=2048,
    auto_match=False,
    sources={"max_model_len": "pytest_vlmhb/tinymodel.py"},
)
