"""`python -m styleclip_utils.app [--preset ffhq ...] [--host H] [--port P]`: load the models, then serve."""
import argparse
import sys


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m styleclip_utils.app", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--preset", default="synthfaces", choices=("synthfaces", "ffhq"))
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--weights-dir", default="", help="synthfaces: a folder of SynthFaces models")
    ap.add_argument("--generator", default="", help="ffhq: a StyleGAN2 file (default: the registry's cache)")
    ap.add_argument("--clip", default="", help="ffhq: a CLIP ViT-B/32 file")
    ap.add_argument("--arcface", default="", help="ffhq: an ArcFace IR-SE50 file (the identity loss)")
    ap.add_argument("--encoder", default="", help="ffhq: an e4e file")
    ap.add_argument("--relevance", default="", help="a relevance file for global directions (notebook 05)")
    ap.add_argument("--mapper", action="append", default=[], metavar="PROMPT=PATH",
                    help="ffhq: an official mapper file and its prompt (repeatable)")
    ap.add_argument("--max-upload-mb", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2, help="edits computed at once")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    mappers = {}
    for item in args.mapper:
        prompt, sep, path = item.partition("=")
        if not sep or not prompt.strip() or not path:
            sys.exit(f"--mapper takes PROMPT=PATH, e.g. --mapper 'afro=mappers/afro.pt'; got {item!r}")
        mappers[prompt.strip()] = path
    import uvicorn

    from .server import create_app
    from .service import AppConfig, EditService

    cfg = AppConfig(preset=args.preset, device=args.device, weights_dir=args.weights_dir, generator=args.generator,
                    clip=args.clip, arcface=args.arcface, encoder=args.encoder, relevance=args.relevance,
                    mappers=mappers, max_upload_mb=args.max_upload_mb, workers=args.workers)
    print(f"loading the {cfg.preset} models ...", flush=True)
    service = EditService(cfg)
    print(f"loaded in {service.load_seconds:.1f} s: {service.models.about}", flush=True)
    print(f"open http://{'localhost' if args.host in ('0.0.0.0', '127.0.0.1') else args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
