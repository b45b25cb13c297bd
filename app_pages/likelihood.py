"""Likelihood: what a model's bits/dim say about images it was not trained on (genlab.metrics.ood): the
histograms per data set, the AUROC of three scores, the images each score ranks first and last, one image at
a time, and (outside public mode) an image of the visitor's own."""

import pandas as pd
import streamlit as st
import torch

from app_pages.common import get_model, model_at, model_picker, scored
from genlab import GenlabError, names, public
from genlab.explore import grid, png_bytes
from genlab.metrics.ood import (
    CORRECTED,
    OOD_IMAGES,
    RAW,
    SCORES,
    candidate_sets,
    image_from_bytes,
    ood_report,
    ranked,
    require_here,
    score_image,
    set_images,
)
from genlab.models import resolve_model_dir
from genlab.plots import ood_histogram

st.title("Likelihood")
st.markdown(
    "A likelihood model scores every image in bits/dim: lower means *more probable under the model*. Trained on "
    "Fashion-MNIST, flows and VAEs nevertheless give MNIST's digits **lower** bits/dim than Fashion-MNIST's own "
    "test images (Nalisnick et al., [*Do Deep Generative Models Know What They Don't Know?*]"
    "(https://arxiv.org/abs/1810.09136), ICLR 2019): simple images are probable under any model. Two corrections "
    "are computed here: **S(x)**, bits/dim minus the image's size as a PNG (Serrà et al., [*Input Complexity and "
    "Out-of-Distribution Detection*](https://arxiv.org/abs/1909.11480), ICLR 2020), and the **typicality test**, "
    "which flags bits/dim far from the training data's mean in either direction (Nalisnick et al., "
    "[arXiv 1906.02994](https://arxiv.org/abs/1906.02994)). A background model (Ren et al., "
    "[arXiv 1906.02845](https://arxiv.org/abs/1906.02845)) is another fix, not computed here."
)

entry = model_picker("Model", key="lik_model", prefer=lambda e: e.dataset == "fashion-mnist")
if entry is None or (model := get_model(entry)) is None:
    st.stop()
if entry.dataset is None:
    st.info("The data this model was trained on is unknown, so there is nothing to compare its bits/dim with.")
    st.stop()
try:
    require_here(entry.dataset)
    here, start = candidate_sets(entry.dataset)
    where = (str(entry.path), entry.mtime)
    # the full count where the model carries its scores (the shipped Fashion-MNIST pair), else a quick first look
    full = scored(model, *where, entry.dataset, "test", OOD_IMAGES)
except GenlabError as e:
    st.error(str(e))
    st.stop()
outs = st.multiselect("Compare its training data's test set with", here, default=start, key="lik_outs")
first = OOD_IMAGES if full else public.cap_bound_images(500)
n = st.select_slider("Images per set", sorted({200, 500, 1000, OOD_IMAGES, first}), first, key="lik_n")
if not outs:
    st.info("Pick at least one data set to compare with.")
    st.stop()
sets = [(entry.dataset, "train"), (entry.dataset, "test")] + [(d, "test") for d in outs]
todo = [s for s in sets if not scored(model, *where, *s, n)]
if todo and public.enabled() and n > public.cap_bound_images(n):
    st.info(f"This public app scores at most {public.cap_bound_images(n)} new images per set; choose fewer.")
    st.stop()


@st.cache_resource(max_entries=8, show_spinner=False)  # read-only once made: shared by every session
def _report(path: str, mtime: float, dataset: str, outs: tuple, n: int):
    folder = resolve_model_dir(path)
    return ood_report(model_at(path, mtime), dataset, list(outs), n, label=folder.name, shipped=folder / names.OOD)


@st.cache_resource(max_entries=16, show_spinner=False)
def _images(path: str, mtime: float, dataset: str, n: int):
    return set_images(model_at(path, mtime), dataset, "test", n)[0]


with st.spinner(f"Scoring {', '.join(f'{d} {s}' for d, s in todo)} ({model.bound_kind(model.default_eval_k)})…"):
    try:
        report = _report(*where, entry.dataset, tuple(outs), n)
    except GenlabError as e:
        st.error(str(e))
        st.stop()
images = {name: _images(*where, s.dataset, n) for name, s in report.sets.items()}

st.subheader("How well each score finds the other data sets")
table = pd.DataFrame(report.summary()).set_index("data").apply(pd.to_numeric)  # None -> NaN, shown as "—"
st.dataframe(table.style.format(precision=3, na_rep="—"), key="lik_table")
st.caption(
    f"Bits/dim are {report.bpd_kind}. AUROC: 1 finds every outlier, 0.5 is chance, **below 0.5 ranks the outliers "
    f"as more in-distribution** than the model's own test images. Ĥ, the training images' mean, is "
    f"{report.train_bpd:.3f}; the typicality test flags a batch of 10 whose mean is more than "
    f"{report.threshold:.3f} bits/dim from it (the 99th percentile over batches of half the model's own test "
    f"images; {report.false_alarms:.1%} of batches of the other half are flagged)."
)

st.subheader("One image at a time")
c1, c2 = st.columns([1, 2])
which = c1.selectbox("From", list(report.sets), key="lik_set")
i = c1.number_input("Image #", 0, len(report.sets[which].bpd) - 1, 0, key="lik_i")
s = report.sets[which]
marker = {RAW: s.bpd[i], CORRECTED: s.score[i]}
c1.image(png_bytes(grid(images[which][i : i + 1].float().div(255), scale=4)), output_format="PNG")
c1.markdown(f"**{s.bpd[i]:.3f}** bits/dim · PNG **{s.png_bpd[i]:.3f}** bits/dim · S(x) **{s.score[i]:.3f}**")
upload = None
if public.enabled():
    c1.caption("Scoring an image of your own is off in this public app.")
else:
    upload = c1.file_uploader(
        "Or score an image of your own (PNG or JPEG, up to 2 MB)", ["png", "jpg", "jpeg"], max_upload_size=2
    )
label = f"{which} #{i}"
if upload is not None:
    try:
        x = image_from_bytes(upload.getvalue(), model.config.image_size, model.config.channels)
        bpd, png = score_image(model, x)
        c1.image(png_bytes(grid(x.float().div(255), scale=4)), caption="your image, as the model sees it")
        c1.markdown(f"Yours: **{bpd:.3f}** bits/dim · PNG **{png:.3f}** · S(x) **{bpd - png:.3f}**")
        marker, label = {RAW: bpd, CORRECTED: bpd - png}, "your image"
    except GenlabError as e:
        c1.error(str(e))
for score in SCORES:
    c2.plotly_chart(ood_histogram(report, score, (label, marker[score])), key=f"lik_hist_{score[:4]}")

st.subheader("What each score ranks first and last")
score = st.radio("Score", list(SCORES), horizontal=True, key="lik_score")
low, high = ranked(report, score, 8)
for col, picks, title in zip(st.columns(2), (low, high), ("most in-distribution", "most out-of-distribution")):
    strip = [images[name][j : j + 1] for name, j in picks]
    col.image(png_bytes(grid(torch.cat(strip).float().div(255), nrow=8, scale=2)), output_format="PNG")
    col.caption(f"{title} by {score}: " + ", ".join(name for name, _ in picks))
