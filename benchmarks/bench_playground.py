"""Notebook 06's costs: fitting the attribute directions (labelling n generated faces with the judges + the ridge
fits), one slider edit (edit + render, batch 1), a GIF's frames, and the style transfer per image at the working
sizes, with the identity net (the fallback) and with a VGG19 of the real layout (random weights: the same cost).
GPU rows when one is visible.

    python benchmarks/bench_playground.py [--skip-vgg]
"""
import argparse

import torch

from timing import timed
from styleclip_utils.edit import directions as dirs
from styleclip_utils.edit import playground as pg
from styleclip_utils.edit import style_transfer as st
from styleclip_utils.weights import zoo


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-vgg", action="store_true")
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("| what | device | seconds |")
    print("|---|---|---|")
    for dev in devices:
        G = zoo.load_generator(dev).requires_grad_(False)
        classifier, judge = zoo.load_classifier(dev), zoo.load_measure_judge(dev)
        for n in (500, 2000):
            s = timed(lambda: dirs.fit_directions(G, classifier, judge, n=n), dev)
            print(f"| fit 14 directions on {n} faces (label + fit) | {dev.type} | {s:.2f} |", flush=True)
        D = dirs.fit_directions(G, classifier, judge, n=500)
        ws = pg.ws_of_seeds(G, [3], 0.7)
        with torch.no_grad():
            s = timed(lambda: G.synthesis(D.edit(ws, "smile", 1.0, ["gender", "age"])), dev, repeats=20)
        print(f"| one conditional slider edit + render (batch 1) | {dev.type} | {s:.4f} |", flush=True)
        s = timed(lambda: dirs.measure_directions(G, D, classifier, judge, n=200), dev)
        print(f"| measure 14 directions on 200 faces | {dev.type} | {s:.2f} |", flush=True)
        s = timed(lambda: pg.interpolation(G, 7, 11, steps=8), dev, repeats=5)
        print(f"| 8 interpolation frames | {dev.type} | {s:.4f} |", flush=True)
        nets = [("identity net", st.convnet_features(zoo.load_identity_net(dev)))]
        if not args.skip_vgg:
            import torchvision
            vgg = torchvision.models.vgg19(weights=None)
            nets.append(("VGG19 (random weights, real layout)", st.FeatureNet(
                vgg.features[:st.VGG_CONTENT + 8].to(dev), st.VGG_STYLE, st.VGG_CONTENT, "vgg19",
                st.IMAGENET_MEAN, st.IMAGENET_STD).to(dev)))
        face = G.synthesis(ws)
        for name, net in nets:
            for size, steps in ((64, 60), (128, 60)):
                s = timed(lambda: st.style_transfer(face, st.style_image("mosaic"), net, steps=steps, size=size,
                                                    progress=False), dev)
                print(f"| style transfer, {name}, {size} px, {steps} steps, 1 image | {dev.type} | {s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
