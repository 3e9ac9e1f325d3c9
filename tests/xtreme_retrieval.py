"""A plain port of XTREME's retrieval functions, the oracle of tests/test_retrieval_*.py.

From google-research/xtreme `third_party/utils_retrieve.py` (commit 4940374c) and the BUCC/Tatoeba branches of
`third_party/run_retrieval.py` / `evaluate_retrieval.py` and `evaluate.py`, kept as close to the original as
possible: the same loops, the same files, the same order of operations. Two changes: faiss's exact flat
indexes are replaced by the brute-force numpy search they compute (float32, ties to the lower index), and
`mine_bitext` takes a `normalize` switch so that a test can show what a missing L2 normalisation changes, and
always searches both directions (the original skips one for retrieval 'fwd'/'bwd' and then fails).
`bucc_optimize`, `bucc_extract`, `read_sent2id`, `read_candidate2score` and `bucc_f1` are unchanged.
"""

from __future__ import annotations

import numpy as np


def normalize_L2(x):
    """faiss.normalize_L2: in place, float32."""
    x /= np.linalg.norm(x, axis=1, keepdims=True)


def knnCPU(x, y, k, dist='cosine'):
    # x: query, y: database (faiss IndexFlatIP / IndexFlatL2, exact)
    if dist == 'cosine':
        sims = x @ y.T
        ind = np.argsort(-sims, axis=1, kind='stable')[:, :k]
        sim = np.take_along_axis(sims, ind, axis=1)
    else:
        d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
        ind = np.argsort(d, axis=1, kind='stable')[:, :k]
        sim = np.take_along_axis(d, ind, axis=1)
        sim = 1 / (1 + sim)
    return sim.astype(np.float32), ind


def knn(x, y, k, use_gpu=False, dist='cosine'):
    return knnCPU(x, y, k, dist)


def score(x, y, fwd_mean, bwd_mean, margin, dist='cosine'):
    if dist == 'cosine':
        return margin(x.dot(y), (fwd_mean + bwd_mean) / 2)
    else:
        l2 = ((x - y) ** 2).sum()
        sim = 1 / (1 + l2)
        return margin(sim, (fwd_mean + bwd_mean) / 2)


def score_candidates(x, y, candidate_inds, fwd_mean, bwd_mean, margin, dist='cosine'):
    scores = np.zeros(candidate_inds.shape)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            k = candidate_inds[i, j]
            scores[i, j] = score(x[i], y[k], fwd_mean[i], bwd_mean[k], margin, dist)
    return scores


def text_load_unify(fname, encoding, unify=True):
    fin = open(fname, encoding=encoding, errors='surrogateescape')
    inds = []
    sents = []
    sent2ind = {}
    n = 0
    nu = 0
    for line in fin:
        new_ind = len(sent2ind)
        inds.append(sent2ind.setdefault(line, new_ind))
        if unify:
            if inds[-1] == new_ind:
                sents.append(line[:-1])
                nu += 1
        else:
            sents.append(line[:-1])
            nu += 1
        n += 1
    fin.close()
    return inds, sents


def unique_embeddings(emb, ind):
    aux = {j: i for i, j in enumerate(ind)}
    return emb[[aux[i] for i in range(len(aux))]]


def mine_bitext(x, y, src_text_file, trg_text_file, output_file, mode='mine',
                retrieval='max', margin='ratio', threshold=0,
                neighborhood=4, use_gpu=False, encoding='utf-8', dist='cosine', normalize=True):
    src_inds, src_sents = text_load_unify(src_text_file, encoding, True)
    trg_inds, trg_sents = text_load_unify(trg_text_file, encoding, True)

    x = unique_embeddings(x, src_inds)
    y = unique_embeddings(y, trg_inds)
    if dist == 'cosine' and normalize:
        normalize_L2(x)
        normalize_L2(y)

    # calculate knn in both directions (the original skips one for retrieval 'fwd'/'bwd' and then fails on
    # the missing mean in score_candidates; both are computed here so that those variants can be scored)
    x2y_sim, x2y_ind = knn(x, y, min(y.shape[0], neighborhood), use_gpu, dist)
    x2y_mean = x2y_sim.mean(axis=1)
    y2x_sim, y2x_ind = knn(y, x, min(x.shape[0], neighborhood), use_gpu, dist)
    y2x_mean = y2x_sim.mean(axis=1)

    # margin function
    if margin == 'absolute':
        margin = lambda a, b: a
    elif margin == 'distance':
        margin = lambda a, b: a - b
    else:  # margin == 'ratio':
        margin = lambda a, b: a / b

    fout = open(output_file, mode='w', encoding=encoding, errors='surrogateescape')
    if mode == 'mine':
        fwd_scores = score_candidates(x, y, x2y_ind, x2y_mean, y2x_mean, margin)
        bwd_scores = score_candidates(y, x, y2x_ind, y2x_mean, x2y_mean, margin)
        fwd_best = x2y_ind[np.arange(x.shape[0]), fwd_scores.argmax(axis=1)]
        bwd_best = y2x_ind[np.arange(y.shape[0]), bwd_scores.argmax(axis=1)]
        if retrieval == 'fwd':
            for i, j in enumerate(fwd_best):
                print(fwd_scores[i].max(), src_sents[i], trg_sents[j], sep='\t', file=fout)
        if retrieval == 'bwd':
            for j, i in enumerate(bwd_best):
                print(bwd_scores[j].max(), src_sents[i], trg_sents[j], sep='\t', file=fout)
        if retrieval == 'intersect':
            for i, j in enumerate(fwd_best):
                if bwd_best[j] == i:
                    print(fwd_scores[i].max(), src_sents[i], trg_sents[j], sep='\t', file=fout)
        if retrieval == 'max':
            indices = np.stack((np.concatenate((np.arange(x.shape[0]), bwd_best)),
                                np.concatenate((fwd_best, np.arange(y.shape[0])))), axis=1)
            scores = np.concatenate((fwd_scores.max(axis=1), bwd_scores.max(axis=1)))
            seen_src, seen_trg = set(), set()
            for i in np.argsort(-scores, kind='stable'):
                src_ind, trg_ind = indices[i]
                if not src_ind in seen_src and not trg_ind in seen_trg:
                    seen_src.add(src_ind)
                    seen_trg.add(trg_ind)
                    if scores[i] > threshold:
                        print(scores[i], src_sents[src_ind], trg_sents[trg_ind], sep='\t', file=fout)
    fout.close()


def bucc_optimize(candidate2score, gold):
    items = sorted(candidate2score.items(), key=lambda x: -x[1])
    ngold = len(gold)
    nextract = ncorrect = 0
    threshold = 0
    best_f1 = 0
    for i in range(len(items)):
        nextract += 1
        if '\t'.join(items[i][0]) in gold:
            ncorrect += 1
        if ncorrect > 0:
            precision = ncorrect / nextract
            recall = ncorrect / ngold
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                threshold = (items[i][1] + items[i + 1][1]) / 2
    return threshold


def bucc_extract(cand2score, th, fname, encoding='utf-8'):
    if fname:
        of = open(fname, 'w', encoding=encoding)
    bitexts = []
    for (src, trg), score in cand2score.items():
        if score >= th:
            bitexts.append(src + '\t' + trg)
            if fname:
                of.write(src + '\t' + trg + '\n')
    if fname:
        of.close()
    return bitexts


def read_sent2id(text_file, id_file, encoding='utf-8'):
    repeated = set()
    sent2id = {}
    with open(id_file, encoding=encoding, errors='surrogateescape') as f:
        ids = [l.strip() for l in f]
    with open(text_file, encoding=encoding, errors='surrogateescape') as f:
        sentences = [l.strip() for l in f]
    for id, sent in zip(ids, sentences):
        if sent in sent2id:
            repeated.add(sent)
        else:
            sent2id[sent] = id
    for sent in repeated:
        del sent2id[sent]
    return sent2id


def read_candidate2score(candidates_file, src_text_file, trg_text_file, src_id_file, trg_id_file, encoding='utf-8'):
    src_sent2id = read_sent2id(src_text_file, src_id_file, encoding)
    trg_sent2id = read_sent2id(trg_text_file, trg_id_file, encoding)
    candidate2score = {}
    with open(candidates_file, encoding=encoding, errors='surrogateescape') as f:
        for line in f:
            score, src, trg = line.split('\t')
            score = float(score)
            src = src.strip()
            trg = trg.strip()
            if src in src_sent2id and trg in trg_sent2id:
                src_id = src_sent2id[src]
                trg_id = trg_sent2id[trg]
                score = max(score, candidate2score.get((src_id, trg_id), score))
                candidate2score[(src_id, trg_id)] = score
    return candidate2score


def bucc_eval(candidates_file, gold_file, src_file, trg_file, src_id_file, trg_id_file, predict_file, threshold=None,
              encoding='utf-8'):
    candidate2score = read_candidate2score(candidates_file, src_file, trg_file, src_id_file, trg_id_file, encoding)

    if threshold is not None and gold_file is None:
        pass
    else:
        gold = {line.strip() for line in open(gold_file)}
        threshold = bucc_optimize(candidate2score, gold)

    bitexts = bucc_extract(candidate2score, threshold, predict_file)
    if gold_file is not None:
        ncorrect = len(gold.intersection(bitexts))
        if ncorrect > 0:
            precision = ncorrect / len(bitexts)
            recall = ncorrect / len(gold)
            f1 = 2*precision*recall / (precision + recall)
        else:
            precision = recall = f1 = 0
        return {'best-threshold': threshold, 'precision': 100*precision, 'recall': 100*recall, 'F1': 100*f1}
    else:
        return None


def bucc_f1(labels, predictions, language=None):
    """evaluate.py: the leaderboard's BUCC score of a predictions file against the gold lines."""
    labels = set([tuple(l.split('\t')) for l in labels])
    predictions = set([tuple(l.split('\t')) for l in predictions])
    ncorrect = len(labels.intersection(predictions))
    if ncorrect > 0:
        precision = ncorrect / len(predictions)
        recall = ncorrect / len(labels)
        f1 = 2 * precision * recall / (precision + recall)
    else:
        precision = recall = f1 = 0
    return {'f1': f1 * 100, 'precision': precision * 100, 'recall': recall * 100}


def similarity_search(x, y, dim, normalize=False):
    """Tatoeba: faiss IndexFlatL2 over x, searched with y; the nearest x of every y."""
    if normalize:
        normalize_L2(x)
        normalize_L2(y)
    d = (y * y).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * y @ x.T
    return np.argmin(d, axis=1)[:, None]


def mean_pool_embedding(all_layer_outputs, masks):
    sent_embeds = []
    for embeds in all_layer_outputs:
        embeds = (embeds * masks.unsqueeze(2).float()).sum(dim=1) / masks.sum(dim=1).view(-1, 1).float()
        sent_embeds.append(embeds)
    return sent_embeds


def cls_pool_embedding(all_layer_outputs):
    sent_embeds = []
    for embeds in all_layer_outputs:
        embeds = embeds[:, 0, :]
        sent_embeds.append(embeds)
    return sent_embeds
