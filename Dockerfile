# The upload-and-edit app on a CPU (SynthFaces preset, its models shipped in data/weights).
#   docker build -t styleclip-app . && docker run --rm -p 8000:8000 styleclip-app     -> http://localhost:8000
# FFHQ: mount the real files and pass the preset (docs/app.md):
#   docker run --rm -p 8000:8000 -v ~/.cache/styleclip:/root/.cache/styleclip styleclip-app \
#       python -m styleclip_utils.app --host 0.0.0.0 --port 8000 --preset ffhq --relevance /root/.cache/styleclip/relevance.safetensors
# tests/test_app.py runs this file's COPY, RUN and CMD steps in a fresh environment, so a broken step fails the tests.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# PyTorch's CPU wheels (PyPI's default build carries CUDA: several GB an image on a CPU does not need)
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY styleclip_utils ./styleclip_utils
COPY data/weights ./data/weights
RUN pip install -e ".[app]"
EXPOSE 8000
CMD ["python", "-m", "styleclip_utils.app", "--host", "0.0.0.0", "--port", "8000"]
